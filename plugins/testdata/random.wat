;; Answers {"r":"<16 hex digits>"} from 8 bytes of WASI random_get.
(module
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "weir" "set_output" (func $set_output (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "0123456789abcdef")
  (data (i32.const 64) "{\"r\":\"")
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32) (result i32)
    (local $i i32) (local $b i32)
    (drop (call $random (i32.const 32) (i32.const 8)))
    (loop $hex
      (local.set $b (i32.load8_u (i32.add (i32.const 32) (local.get $i))))
      (i32.store8 (i32.add (i32.const 70) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.shr_u (local.get $b) (i32.const 4))))
      (i32.store8 (i32.add (i32.const 71) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.and (local.get $b) (i32.const 15))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $hex (i32.lt_u (local.get $i) (i32.const 8))))
    (i32.store8 (i32.const 86) (i32.const 34)) ;; "
    (i32.store8 (i32.const 87) (i32.const 125)) ;; }
    (call $set_output (i32.const 64) (i32.const 24))
    (i32.const 0)))
