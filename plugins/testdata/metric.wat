;; Reports metrics through the metric import, then echoes its input:
;; counts "calls" by 1, observes "amount" 2.5, and uses a bad name.
(module
  (import "weir" "set_output" (func $set_output (param i32 i32)))
  (import "weir" "metric" (func $metric (param i32 i32 i32 f64)))
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32) (result i32) (i32.const 1024))
  (data (i32.const 16) "calls")
  (data (i32.const 32) "amount")
  (data (i32.const 48) "Bad-Name")
  (func (export "weir_call") (param $ptr i32) (param $len i32) (result i32)
    (call $metric (i32.const 0) (i32.const 16) (i32.const 5) (f64.const 1))
    (call $metric (i32.const 1) (i32.const 32) (i32.const 6) (f64.const 2.5))
    (call $metric (i32.const 0) (i32.const 48) (i32.const 8) (f64.const 1))
    (call $set_output (local.get $ptr) (local.get $len))
    (i32.const 0)))
