;; Exports only weir_call, with the wrong type, and no memory.
(module
  (memory 1)
  (func (export "weir_call") (param i32) (result i32) (i32.const 0)))
