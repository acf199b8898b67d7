;; Its start section loops forever: instantiating it must fail under a
;; deadline, not hang the upload and burn a core.
(module
  (memory (export "memory") 1)
  (func $start (loop $forever (br $forever)))
  (start $start)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32) (result i32) (i32.const 0)))
