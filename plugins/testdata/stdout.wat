;; Writes 200 lines to stdout per call (through WASI fd_write), then echoes.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "weir" "set_output" (func $set_output (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  ;; iovec at 0: {ptr=16, len=21}; the line at 16.
  (data (i32.const 0) "\10\00\00\00\15\00\00\00")
  (data (i32.const 16) "hello from the guest\n")
  (func (export "weir_call") (param $ptr i32) (param $len i32) (result i32)
    (local $i i32)
    (loop $more
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 200))))
    (call $set_output (local.get $ptr) (local.get $len))
    (i32.const 0)))
