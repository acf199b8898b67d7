;; Reports a clean guest error on every call.
(module
  (import "weir" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (data (i32.const 16) "amount is missing")
  (func (export "weir_call") (param i32 i32) (result i32)
    (call $set_error (i32.const 16) (i32.const 17))
    (i32.const 7)))
