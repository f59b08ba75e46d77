// The built-in parts catalog: public peak numbers for common devices, used as defaults when a
// topology names a `model`. Every number says where it comes from; numbers that no datasheet gives
// are marked "estimate" and are meant to be corrected by calibration (DESIGN.md, Cost model).
// Also: device kinds, per-kind defaults (launch overhead, efficiency, op set) and named op sets.

export type DeviceKind = 'cpu' | 'gpu' | 'accel' | 'dataflow' | 'ipu';
export const DEVICE_KINDS: readonly DeviceKind[] = ['cpu', 'gpu', 'accel', 'dataflow', 'ipu'];

export interface CatalogEntry {
  name: string;
  description: string;
  kind: DeviceKind;
  /** Dense (no sparsity) peak FLOP/s per dtype name: fp32, tf32, fp16, bf16, fp8, int8. */
  peak_flops: Readonly<Record<string, number>>;
  memory_capacity_bytes: number;
  memory_bandwidth_bytes_per_s: number;
  /** Fixed cost per step (kernel launch, graph dispatch), seconds. */
  launch_s: number;
  /** Fraction of peak FLOP/s typically achieved; a starting value that calibration corrects. */
  efficiency: number;
  /** Per op class, where it differs from `efficiency` (attention kernels reach less of peak than GEMMs). */
  class_efficiency?: Readonly<Partial<Record<ComputeClass, number>>>;
  /** Streaming multiprocessors (GPU) that tiled kernels fill in waves (src/cost/model.ts waveEfficiency); absent: not modelled. */
  compute_units?: number;
  /** Fraction of the datasheet memory bandwidth kernels achieve (KIND_DEFAULTS when absent). */
  memory_efficiency?: number;
  /** Name of an entry of OP_SETS. */
  op_set: string;
}

/**
 * Op classes an efficiency may be given for (src/cost/flops.ts OpClass names; the rack YAML's
 * `efficiency: {attention: 0.35}` keys).
 */
export const COMPUTE_CLASSES = ['matmul', 'conv', 'attention', 'elementwise', 'normalization', 'reduction', 'data-movement', 'moe', 'other'] as const;
export type ComputeClass = (typeof COMPUTE_CLASSES)[number];

const T = 1e12;
const GiB = 2 ** 30;
const GB = 1e9;

// HBM and DRAM capacities in datasheets are binary: an "80GB" H100 is 5 stacks of 16 GiB (the
// driver then reserves ~0.5%, so planners should keep headroom). We therefore read "NN GB" of
// device memory as NN GiB. Bandwidths are decimal (TB/s = 1e12 bytes/s) as datasheets state them.

/**
 * Per-kind defaults when neither the file nor the catalog entry gives a number. Launch overheads:
 * GPU ~5 us per kernel launch (CUDA launch latency as measured by e.g. NVIDIA's Nsight guides:
 * 3–7 us end to end); CPU ~1 us (one task dispatch in a thread pool); Gaudi-class ~10 us (graph
 * recipe launch); dataflow ~10 us (a fused pipeline launch; SN40L runs a whole decoder per call);
 * IPU ~2 us (a job on an Arm core, reached by a PCIe doorbell). All are starting values for calibration.
 * Efficiency 0.6 for matrix engines: large bf16 GEMMs reach 0.7–0.8 of peak on H100 (S. Bekman,
 * ml-engineering, "maximum achievable matmul FLOPS" table) and whole models less; 0.5 on CPUs; 0.3
 * on IPUs whose Arm cores are not built for math.
 * Memory efficiency: streaming kernels reach about 80–85% of an HBM GPU's datasheet bandwidth
 * (Jia et al. 2018, "Dissecting the NVIDIA Volta GPU Architecture via Microbenchmarking": 750 of
 * V100's 900 GB/s), and a decode step's weight-streaming GEMVs no more; 0.8 is taken for GPUs,
 * accelerators and dataflow engines (estimate), 0.7 for CPUs (STREAM triad on multi-channel
 * DDR servers typically reaches 70–80% of the channels' peak) and IPUs.
 */
export const KIND_DEFAULTS: Readonly<Record<DeviceKind, { launch_s: number; efficiency: number; memory_efficiency: number; op_set: string }>> = {
  cpu: { launch_s: 1e-6, efficiency: 0.5, memory_efficiency: 0.7, op_set: 'all' },
  gpu: { launch_s: 5e-6, efficiency: 0.6, memory_efficiency: 0.8, op_set: 'all' },
  accel: { launch_s: 10e-6, efficiency: 0.6, memory_efficiency: 0.8, op_set: 'all' },
  dataflow: { launch_s: 10e-6, efficiency: 0.6, memory_efficiency: 0.8, op_set: 'all' },
  ipu: { launch_s: 2e-6, efficiency: 0.3, memory_efficiency: 0.7, op_set: 'ipu-default' },
};

// An IPU (smart NIC) mainly relays; it may run what needs little math: data movement, element-wise
// ops, and the token-routing half of an MoE layer (gate softmax, top-k, one-hot/cumsum/nonzero
// index building, gather/scatter of tokens, the weighted sum that combines expert outputs).
// com.microsoft MoE/QMoE are NOT in it: those ops contain the expert GEMMs themselves.
const DATA_MOVEMENT = [
  'Identity',
  'Reshape',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Transpose',
  'Concat',
  'Split',
  'Slice',
  'Gather',
  'GatherElements',
  'GatherND',
  'Scatter',
  'ScatterElements',
  'ScatterND',
  'Expand',
  'Tile',
  'Pad',
  'Cast',
  'CastLike',
  'Shape',
  'Size',
  'Constant',
  'ConstantOfShape',
  'Range',
  'DepthToSpace',
  'SpaceToDepth',
  'Compress',
];
const ELEMENT_WISE = [
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Neg',
  'Abs',
  'Sign',
  'Ceil',
  'Floor',
  'Round',
  'Sqrt',
  'Reciprocal',
  'Exp',
  'Log',
  'Pow',
  'Mod',
  'Relu',
  'LeakyRelu',
  'Sigmoid',
  'HardSigmoid',
  'Tanh',
  'Erf',
  'Gelu',
  'Clip',
  'Min',
  'Max',
  'Mean',
  'Sum',
  'Where',
  'Equal',
  'Less',
  'LessOrEqual',
  'Greater',
  'GreaterOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'IsNaN',
  'IsInf',
  'BitShift',
  'com.microsoft.FastGelu',
  'com.microsoft.BiasGelu',
  'com.microsoft.QuickGelu',
  'com.microsoft.BiasAdd',
];
const MOE_ROUTING = ['Softmax', 'TopK', 'ArgMax', 'ArgMin', 'OneHot', 'CumSum', 'NonZero', 'ReduceSum', 'ReduceMax'];

/**
 * Named op sets, usable as `ops: {set: NAME}`. `null` means every op. Entries are op types
 * (`Gather`, any domain) or `domain.OpType` (`com.microsoft.FastGelu`, that domain only).
 */
export const OP_SETS: Readonly<Record<string, readonly string[] | null>> = {
  all: null,
  'ipu-default': [...DATA_MOVEMENT, ...ELEMENT_WISE, ...MOE_ROUTING],
};

export const CATALOG: Readonly<Record<string, CatalogEntry>> = {
  // Intel Xeon Platinum 8480+ (product brief / ark.intel.com): 56 cores, 2.0 GHz base, 8 channels
  // DDR5-4800 → 8 × 4800e6 × 8 B = 307.2 GB/s. Peaks derived per core per cycle at 2.0 GHz:
  // AVX-512 fp32 2 FMA × 16 lanes × 2 = 64 → 7.17 TFLOPS; AVX512-FP16 twice that; AMX (Intel
  // Architecture Instruction Set Extensions reference) 1024 bf16 FLOP and 2048 int8 OP per cycle.
  // Capacity: 8 × 64 GB DIMMs (one per channel), a common build; racks override it.
  'xeon-8480': {
    name: 'xeon-8480',
    description: 'Intel Xeon Platinum 8480+ (Sapphire Rapids, 56 cores, AMX)',
    kind: 'cpu',
    peak_flops: { fp32: 56 * 64 * 2.0e9, fp16: 56 * 128 * 2.0e9, bf16: 56 * 1024 * 2.0e9, int8: 56 * 2048 * 2.0e9 },
    memory_capacity_bytes: 512 * GiB,
    memory_bandwidth_bytes_per_s: 307.2 * GB,
    launch_s: KIND_DEFAULTS.cpu.launch_s,
    efficiency: KIND_DEFAULTS.cpu.efficiency,
    op_set: 'all',
  },
  // NVIDIA H100 Tensor Core GPU datasheet, SXM5 column, dense (the datasheet's sparse numbers halved):
  // FP32 67, TF32 494.5, FP16/BF16 989, FP8 1979 TFLOPS, INT8 1979 TOPS; 80 GB HBM3 at 3.35 TB/s;
  // 132 SMs (NVIDIA H100 Tensor Core GPU Architecture whitepaper, SXM5).
  // Attention on Hopper: FlashAttention-2 reaches only 35% of H100's peak (Shah et al. 2024,
  // FlashAttention-3, abstract), and the serving stacks of the measured rows ran FA2-class kernels.
  'h100-sxm': {
    name: 'h100-sxm',
    description: 'NVIDIA H100 SXM5 80GB',
    kind: 'gpu',
    peak_flops: { fp32: 67 * T, tf32: 494.5 * T, fp16: 989 * T, bf16: 989 * T, fp8: 1979 * T, int8: 1979 * T },
    memory_capacity_bytes: 80 * GiB,
    memory_bandwidth_bytes_per_s: 3.35e12,
    compute_units: 132,
    launch_s: KIND_DEFAULTS.gpu.launch_s,
    efficiency: KIND_DEFAULTS.gpu.efficiency,
    class_efficiency: { attention: 0.35 },
    op_set: 'all',
  },
  // NVIDIA H200 Tensor Core GPU datasheet, SXM column: 141 GB HBM3e at 4.8 TB/s; same compute as H100 SXM (and attention efficiency).
  h200: {
    name: 'h200',
    description: 'NVIDIA H200 SXM 141GB',
    kind: 'gpu',
    peak_flops: { fp32: 67 * T, tf32: 494.5 * T, fp16: 989 * T, bf16: 989 * T, fp8: 1979 * T, int8: 1979 * T },
    memory_capacity_bytes: 141 * GiB,
    memory_bandwidth_bytes_per_s: 4.8e12,
    compute_units: 132,
    launch_s: KIND_DEFAULTS.gpu.launch_s,
    efficiency: KIND_DEFAULTS.gpu.efficiency,
    class_efficiency: { attention: 0.35 },
    op_set: 'all',
  },
  // NVIDIA A100 Tensor Core GPU datasheet, 80GB SXM column, dense: FP32 19.5, TF32 156,
  // FP16/BF16 312 TFLOPS, INT8 624 TOPS (no FP8); 80 GB HBM2e at 2,039 GB/s; 108 SMs (NVIDIA A100
  // Tensor Core GPU Architecture whitepaper), every A100 below too.
  'a100-sxm': {
    name: 'a100-sxm',
    description: 'NVIDIA A100 SXM4 80GB',
    kind: 'gpu',
    peak_flops: { fp32: 19.5 * T, tf32: 156 * T, fp16: 312 * T, bf16: 312 * T, int8: 624 * T },
    memory_capacity_bytes: 80 * GiB,
    memory_bandwidth_bytes_per_s: 2.039e12,
    compute_units: 108,
    launch_s: KIND_DEFAULTS.gpu.launch_s,
    efficiency: KIND_DEFAULTS.gpu.efficiency,
    op_set: 'all',
  },
  // Same datasheet, 40GB SXM column: the same compute; 40 GB HBM2 at 1,555 GB/s.
  'a100-sxm-40gb': {
    name: 'a100-sxm-40gb',
    description: 'NVIDIA A100 SXM4 40GB',
    kind: 'gpu',
    peak_flops: { fp32: 19.5 * T, tf32: 156 * T, fp16: 312 * T, bf16: 312 * T, int8: 624 * T },
    memory_capacity_bytes: 40 * GiB,
    memory_bandwidth_bytes_per_s: 1.555e12,
    compute_units: 108,
    launch_s: KIND_DEFAULTS.gpu.launch_s,
    efficiency: KIND_DEFAULTS.gpu.efficiency,
    op_set: 'all',
  },
  // Same datasheet, 80GB PCIe column: the same compute; 80 GB HBM2e at 1,935 GB/s.
  'a100-pcie': {
    name: 'a100-pcie',
    description: 'NVIDIA A100 PCIe 80GB',
    kind: 'gpu',
    peak_flops: { fp32: 19.5 * T, tf32: 156 * T, fp16: 312 * T, bf16: 312 * T, int8: 624 * T },
    memory_capacity_bytes: 80 * GiB,
    memory_bandwidth_bytes_per_s: 1.935e12,
    compute_units: 108,
    launch_s: KIND_DEFAULTS.gpu.launch_s,
    efficiency: KIND_DEFAULTS.gpu.efficiency,
    op_set: 'all',
  },
  // NVIDIA L40S datasheet (Ada), dense (sparse halved): FP32 91.6, TF32 183, FP16/BF16 362,
  // FP8 733 TFLOPS, INT8 733 TOPS; 48 GB GDDR6 at 864 GB/s; 142 SMs (18,176 CUDA cores, 128 per Ada SM).
  l40s: {
    name: 'l40s',
    description: 'NVIDIA L40S 48GB',
    kind: 'gpu',
    peak_flops: { fp32: 91.6 * T, tf32: 183 * T, fp16: 362 * T, bf16: 362 * T, fp8: 733 * T, int8: 733 * T },
    memory_capacity_bytes: 48 * GiB,
    memory_bandwidth_bytes_per_s: 864 * GB,
    compute_units: 142,
    launch_s: KIND_DEFAULTS.gpu.launch_s,
    efficiency: KIND_DEFAULTS.gpu.efficiency,
    op_set: 'all',
  },
  // NVIDIA A10 datasheet (Ampere GA102), dense: FP32 31.2, TF32 62.5, FP16/BF16 125 TFLOPS, INT8
  // 250 TOPS; 24 GB GDDR6 at 600 GB/s; 72 SMs (9,216 CUDA cores, 128 per SM). AWS's A10G (g5 instances) has the same memory; its compute
  // is taken from the A10 (estimate: AWS publishes no peak).
  a10g: {
    name: 'a10g',
    description: 'NVIDIA A10G 24GB (AWS g5; A10 datasheet numbers)',
    kind: 'gpu',
    peak_flops: { fp32: 31.2 * T, tf32: 62.5 * T, fp16: 125 * T, bf16: 125 * T, int8: 250 * T },
    memory_capacity_bytes: 24 * GiB,
    memory_bandwidth_bytes_per_s: 600 * GB,
    compute_units: 72,
    launch_s: KIND_DEFAULTS.gpu.launch_s,
    efficiency: KIND_DEFAULTS.gpu.efficiency,
    op_set: 'all',
  },
  // Intel Gaudi 2 (Habana Gaudi 2 white paper; Gaudi 3 white paper comparison table): 96 GB HBM2e
  // at 2.46 TB/s, MME BF16 ~432 TFLOPS, FP8 ~865 TFLOPS. FP16 taken equal to BF16 (same MME path).
  // FP32: no public peak; estimate bf16/4, corrected by calibration.
  gaudi2: {
    name: 'gaudi2',
    description: 'Intel Gaudi 2 (HL-225)',
    kind: 'accel',
    peak_flops: { fp32: 108 * T, fp16: 432 * T, bf16: 432 * T, fp8: 865 * T },
    memory_capacity_bytes: 96 * GiB,
    memory_bandwidth_bytes_per_s: 2.46e12,
    launch_s: KIND_DEFAULTS.accel.launch_s,
    efficiency: KIND_DEFAULTS.accel.efficiency,
    op_set: 'all',
  },
  // Intel Gaudi 3 AI accelerator white paper (2024): 128 GB HBM2e at 3.7 TB/s, MME BF16 and FP8
  // 1835 TFLOPS, FP16 the same; 24 × 200 GbE RoCE ports on chip. FP32: estimate bf16/4.
  gaudi3: {
    name: 'gaudi3',
    description: 'Intel Gaudi 3 (HL-325L OAM)',
    kind: 'accel',
    peak_flops: { fp32: 458.75 * T, fp16: 1835 * T, bf16: 1835 * T, fp8: 1835 * T },
    memory_capacity_bytes: 128 * GiB,
    memory_bandwidth_bytes_per_s: 3.7e12,
    launch_s: KIND_DEFAULTS.accel.launch_s,
    efficiency: KIND_DEFAULTS.accel.efficiency,
    op_set: 'all',
  },
  // SambaNova SN40L RDU (Hot Chips 2024; Prabhakar et al., "SambaNova SN40L: Scaling the AI Memory
  // Wall with Dataflow and Composition of Experts", 2024): 638 BF16 TFLOPS, 520 MB on-chip SRAM,
  // 64 GB HBM (bandwidth ~2 TB/s, approximate), plus a DDR capacity tier of up to 1.5 TB per socket
  // at far lower bandwidth. hxc models one memory tier per device, so the HBM tier is used here;
  // describe the DDR tier as a separate device if weights must live there. FP32: estimate bf16/4.
  sn40l: {
    name: 'sn40l',
    description: 'SambaNova SN40L RDU (HBM tier; 520MB SRAM, DDR tier not modelled)',
    kind: 'dataflow',
    peak_flops: { fp32: 159.5 * T, fp16: 638 * T, bf16: 638 * T },
    memory_capacity_bytes: 64 * GiB,
    memory_bandwidth_bytes_per_s: 2.0e12,
    launch_s: KIND_DEFAULTS.dataflow.launch_s,
    efficiency: KIND_DEFAULTS.dataflow.efficiency,
    op_set: 'all',
  },
  // Intel IPU E2100 ("Mount Evans"; ISSCC 2023 paper 9.4, Hot Chips 2025 comparison with E2200):
  // 16 Arm Neoverse N1 cores up to 2.5 GHz, 3 channels LPDDR4x-4267 up to 48 GB (bandwidth derived
  // as 3 × 64-bit × 4267 MT/s = 102.4 GB/s), 200 GbE, PCIe Gen4 x16. FLOPs derived from N1's two
  // 128-bit NEON pipes: fp32 16 FLOP/cycle/core → 0.64 TFLOPS, fp16 twice, int8 (SDOT) 4× fp32.
  // N1 has no bf16 arithmetic. It mainly relays; see OP_SETS['ipu-default'].
  'ipu-e2100': {
    name: 'ipu-e2100',
    description: 'Intel IPU E2100 (16x Arm Neoverse N1 smart NIC)',
    kind: 'ipu',
    peak_flops: { fp32: 16 * 16 * 2.5e9, fp16: 16 * 32 * 2.5e9, int8: 16 * 64 * 2.5e9 },
    memory_capacity_bytes: 48 * GiB,
    memory_bandwidth_bytes_per_s: 102.4 * GB,
    launch_s: KIND_DEFAULTS.ipu.launch_s,
    efficiency: KIND_DEFAULTS.ipu.efficiency,
    op_set: 'ipu-default',
  },
};

export const CATALOG_NAMES: readonly string[] = Object.keys(CATALOG).sort();

/** The catalog entry, or undefined (the loader turns that into HXC2305 with the list). */
export function catalogEntry(name: string): CatalogEntry | undefined {
  return Object.hasOwn(CATALOG, name) ? CATALOG[name] : undefined;
}
