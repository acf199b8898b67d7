;; Grows its table (declared without a maximum, as Go's toolchain does) by
;; 1,000 elements, which must work, then by 100,000,000, which the host's
;; table limit must refuse (-1) without allocating; reports each result.
(module
  (import "weir" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (table 1 funcref)
  (data (i32.const 16) "the small grow failed")
  (data (i32.const 48) "table.grow by 100000000 returned -1")
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32) (result i32)
    (if (i32.eq (table.grow 0 (ref.null func) (i32.const 1000)) (i32.const -1))
      (then (call $set_error (i32.const 16) (i32.const 21)) (return (i32.const 1))))
    (if (i32.eq (table.grow 0 (ref.null func) (i32.const 100000000)) (i32.const -1))
      (then (call $set_error (i32.const 48) (i32.const 35)) (return (i32.const 2))))
    (i32.const 0)))
