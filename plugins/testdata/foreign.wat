;; Imports functions the host does not offer.
(module
  (import "env" "open_socket" (func (param i32) (result i32)))
  (import "weir" "read_file" (func (param i32 i32)))
  (import "weir" "log" (func (param i64)))
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32) (result i32) (i32.const 0)))
