// Op families named once. A view op hands its input on with another shape and the same elements in
// the same order (onnxruntime aliases it); the passes that look through views add what their own
// question allows (tracing a value back to its source may cross a Cast; costing counts Shape and
// Constant as free), each by extending this set, not by writing its own.

/** Reshape-like ops: same elements, same order, another shape. */
export const VIEW_OPS: ReadonlySet<string> = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity']);

/** The view ops plus Cast: what a value can be traced back through to where it came from (input 0 only). */
export const TRACE_THROUGH: ReadonlySet<string> = new Set([...VIEW_OPS, 'Cast']);
