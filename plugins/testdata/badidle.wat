;; badidle: exports weir_idle with the wrong type (it must be func()).
(module
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32) (result i32) (i32.const 0))
  (func (export "weir_idle") (param i32) (result i32) (i32.const 0)))
