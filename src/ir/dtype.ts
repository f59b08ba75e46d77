// Tensor element types: ONNX TensorProto.DataType numbers, their names as hxc prints them, and
// their sizes. Sizes of sub-byte types (int4/uint4) are given in bits so byte sizes round up.

export type DType =
  | 'float32'
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'string'
  | 'bool'
  | 'float16'
  | 'float64'
  | 'uint32'
  | 'uint64'
  | 'complex64'
  | 'complex128'
  | 'bfloat16'
  | 'float8e4m3fn'
  | 'float8e4m3fnuz'
  | 'float8e5m2'
  | 'float8e5m2fnuz'
  | 'uint4'
  | 'int4'
  | 'float4e2m1';

/** Indexed by ONNX TensorProto.DataType (onnx.proto3); 0 = UNDEFINED. */
const BY_ONNX: (DType | undefined)[] = [
  undefined,
  'float32',
  'uint8',
  'int8',
  'uint16',
  'int16',
  'int32',
  'int64',
  'string',
  'bool',
  'float16',
  'float64',
  'uint32',
  'uint64',
  'complex64',
  'complex128',
  'bfloat16',
  'float8e4m3fn',
  'float8e4m3fnuz',
  'float8e5m2',
  'float8e5m2fnuz',
  'uint4',
  'int4',
  'float4e2m1',
];

const BITS: Record<DType, number> = {
  float32: 32,
  uint8: 8,
  int8: 8,
  uint16: 16,
  int16: 16,
  int32: 32,
  int64: 64,
  string: 0,
  bool: 8,
  float16: 16,
  float64: 64,
  uint32: 32,
  uint64: 64,
  complex64: 64,
  complex128: 128,
  bfloat16: 16,
  float8e4m3fn: 8,
  float8e4m3fnuz: 8,
  float8e5m2: 8,
  float8e5m2fnuz: 8,
  uint4: 4,
  int4: 4,
  float4e2m1: 4,
};

const ALIASES: Record<string, DType> = {
  float: 'float32',
  fp32: 'float32',
  f32: 'float32',
  half: 'float16',
  fp16: 'float16',
  f16: 'float16',
  bf16: 'bfloat16',
  double: 'float64',
  fp64: 'float64',
  f64: 'float64',
  fp8: 'float8e4m3fn',
};

export function dtypeFromOnnx(code: number): DType | undefined {
  return BY_ONNX[code];
}

export function dtypeToOnnx(dtype: DType): number {
  return BY_ONNX.indexOf(dtype);
}

/** Accepts hxc names, ONNX-style short names (`float`, `fp16`, `bf16`). */
export function parseDType(name: string): DType | undefined {
  if ((BITS as Record<string, number>)[name] !== undefined) return name as DType;
  return ALIASES[name.toLowerCase()];
}

export function dtypeBits(dtype: DType): number {
  return BITS[dtype];
}

/** Bytes taken by `elements` elements; strings have no fixed size and count 0. */
export function byteSizeOf(dtype: DType, elements: number): number {
  return Math.ceil((BITS[dtype] * elements) / 8);
}

export function isFloat(dtype: DType): boolean {
  return dtype.startsWith('float') || dtype === 'bfloat16';
}

export const ALL_DTYPES: readonly DType[] = Object.keys(BITS) as DType[];
