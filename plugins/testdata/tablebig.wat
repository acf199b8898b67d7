;; Declares a table of 100,000,001 elements: refused at load, before any
;; instance allocates it.
(module
  (memory (export "memory") 1)
  (table 100000001 funcref)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32) (result i32) (i32.const 0)))
