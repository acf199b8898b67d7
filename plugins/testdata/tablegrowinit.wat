;; Grows its table by 100,000,000 elements in _initialize and traps unless
;; the host refused (-1): the load must neither take seconds nor allocate.
(module
  (memory (export "memory") 1)
  (table 1 funcref)
  (func (export "_initialize")
    (if (i32.ne (table.grow 0 (ref.null func) (i32.const 100000000)) (i32.const -1))
      (then unreachable)))
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32) (result i32) (i32.const 0)))
