;; wat-echo: the smallest weir plugin (ABI v1). It returns its input
;; unchanged; the benchmark uses it to measure the host's per-call cost.
;;
;; Build: wat2wasm echo.wat -o wat-echo.wasm
(module
  (import "weir" "set_output" (func $set_output (param i32 i32)))

  (memory (export "memory") 1)

  ;; The input region starts after the first 1 KiB (kept free for nothing in
  ;; particular: address 0 is avoided so that a null pointer is never valid).
  (global $in_base i32 (i32.const 1024))

  (func (export "weir_abi_version") (result i32) (i32.const 1))

  ;; weir_alloc(size) -> ptr: one region, grown as needed. Returns 0 (an
  ;; allocation failure) when memory cannot grow.
  (func (export "weir_alloc") (param $size i32) (result i32)
    (local $need i32)
    ;; pages needed to hold in_base + size bytes
    (local.set $need
      (i32.shr_u
        (i32.add (i32.add (global.get $in_base) (local.get $size)) (i32.const 65535))
        (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.get $in_base))

  ;; weir_call(ptr, len) -> status: echo the input back.
  (func (export "weir_call") (param $ptr i32) (param $len i32) (result i32)
    (call $set_output (local.get $ptr) (local.get $len))
    (i32.const 0)))
