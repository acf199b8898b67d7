;; memory.fill (input of one byte) or memory.copy (otherwise) of 4 GiB - 1
;; bytes in a one-page memory: must trap out of bounds, not grow memory.
(module
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32) (result i32)
    (if (i32.eq (local.get 1) (i32.const 1))
      (then (memory.fill (i32.const 0) (i32.const 65) (i32.const -1)))
      (else (memory.copy (i32.const 0) (i32.const 1) (i32.const -1))))
    (i32.const 0)))
