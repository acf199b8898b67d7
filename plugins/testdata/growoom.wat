;; Handles a refused memory.grow as C's malloc or Rust's try_reserve
;; would: weir_alloc grows by the input's pages and returns 0 when it
;; cannot; weir_call grows a page at a time until refused, then reports
;; "out of memory" with status 1.
(module
  (import "weir" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "out of memory")
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param $n i32) (result i32)
    (local $old i32)
    (local.set $old (memory.grow (i32.add (i32.shr_u (local.get $n) (i32.const 16)) (i32.const 1))))
    (if (i32.eq (local.get $old) (i32.const -1)) (then (return (i32.const 0))))
    (i32.shl (local.get $old) (i32.const 16)))
  (func (export "weir_call") (param i32 i32) (result i32)
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (call $set_error (i32.const 16) (i32.const 13))
    (i32.const 1)))
