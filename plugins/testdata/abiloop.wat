;; weir_abi_version loops forever: validation must fail under a deadline.
(module
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (loop $forever (br $forever)) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32) (result i32) (i32.const 0)))
