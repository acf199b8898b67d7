;; Sets an output of the length its input asks for ({"n":...} is not parsed:
;; the input's length in KiB is the output's), a JSON object padded with
;; spaces, so tests can cross the host's output limit.
(module
  (import "weir" "set_output" (func $set_output (param i32 i32)))
  (memory (export "memory") 64) ;; 4 MiB
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (data (i32.const 65536) "{\"big\":1}")
  (func (export "weir_call") (param $ptr i32) (param $len i32) (result i32)
    (local $n i32)
    ;; output length: 1024 * input length, at least the 9-byte object
    (local.set $n (i32.mul (local.get $len) (i32.const 1024)))
    (if (i32.lt_u (local.get $n) (i32.const 9)) (then (local.set $n (i32.const 9))))
    (memory.fill (i32.const 65545) (i32.const 32) (i32.sub (local.get $n) (i32.const 9)))
    (call $set_output (i32.const 65536) (local.get $n))
    (i32.const 0)))
