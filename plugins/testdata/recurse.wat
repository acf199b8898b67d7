;; Recurses through a mutual pair of functions without loops; with a deep
;; enough stack it would run for a long time: the per-function interrupt
;; check or the stack limit must end it.
(module
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func $a (param i32) (result i32) (call $b (i32.add (local.get 0) (i32.const 1))))
  (func $b (param i32) (result i32) (call $a (i32.add (local.get 0) (i32.const 1))))
  (func (export "weir_call") (param i32 i32) (result i32) (call $a (i32.const 0))))
