;; idle: exports weir_idle, which counts how often the host called it; each
;; call answers {"idle":N} with N that count so far (0-9). An input whose
;; first byte is 't' makes the next weir_idle trap.
(module
  (import "weir" "set_output" (func $set_output (param i32 i32)))
  (memory (export "memory") 1)
  (global $idles (mut i32) (i32.const 0))
  (global $trap (mut i32) (i32.const 0))
  (data (i32.const 16) "{\"idle\":0}")
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param $ptr i32) (param $len i32) (result i32)
    (global.set $trap (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 116))) ;; 't'
    (i32.store8 (i32.const 24) (i32.add (i32.const 48) (select (global.get $idles) (i32.const 9) (i32.lt_u (global.get $idles) (i32.const 9)))))
    (call $set_output (i32.const 16) (i32.const 10))
    (i32.const 0))
  (func (export "weir_idle")
    (if (global.get $trap) (then unreachable))
    (global.set $idles (i32.add (global.get $idles) (i32.const 1)))))
