;; Two tables share the host's table limit (100,000 elements): each may
;; grow by half of it, and not one element more. weir_call returns the
;; step that went wrong (0: none).
(module
  (memory (export "memory") 1)
  (table $a 0 funcref)
  (table $b 0 funcref)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32) (result i32)
    (if (i32.eq (table.grow $a (ref.null func) (i32.const 50000)) (i32.const -1))
      (then (return (i32.const 1))))
    (if (i32.eq (table.grow $b (ref.null func) (i32.const 50000)) (i32.const -1))
      (then (return (i32.const 2))))
    (if (i32.ne (table.grow $a (ref.null func) (i32.const 1)) (i32.const -1))
      (then (return (i32.const 3))))
    (if (i32.ne (table.grow $b (ref.null func) (i32.const 1)) (i32.const -1))
      (then (return (i32.const 4))))
    (i32.const 0)))
