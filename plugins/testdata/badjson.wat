;; Returns output that starts as a JSON object but is not valid JSON.
(module
  (import "weir" "set_output" (func $set_output (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (data (i32.const 16) "{\"x\":1,\"y\":}")
  (func (export "weir_call") (param i32 i32) (result i32)
    (call $set_output (i32.const 16) (i32.const 12))
    (i32.const 0)))
