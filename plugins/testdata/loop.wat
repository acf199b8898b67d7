;; Loops forever in weir_call when the input is longer than 10 bytes;
;; otherwise echoes it, so a test can show the next call succeeds.
(module
  (import "weir" "set_output" (func $set_output (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param $ptr i32) (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 10))
      (then (loop $forever (br $forever))))
    (call $set_output (local.get $ptr) (local.get $len))
    (i32.const 0)))
