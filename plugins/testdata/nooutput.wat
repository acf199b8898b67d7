;; Returns success without output, then (on the second call) a non-object.
(module
  (import "weir" "set_output" (func $set_output (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (data (i32.const 16) "[1,2]")
  (global $n (mut i32) (i32.const 0))
  (func (export "weir_call") (param i32 i32) (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (if (i32.gt_u (global.get $n) (i32.const 1))
      (then (call $set_output (i32.const 16) (i32.const 5))))
    (i32.const 0)))
