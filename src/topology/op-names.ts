// Operator names a rack's `ops.include` / `ops.exclude` may give without a domain. An entry names an
// op type (any domain) or `domain.OpType`; a misspelt one ("Matmul") matched nothing and changed
// nothing without a word — the device kept or lost ops the user did not mean. A bare name that is a
// near miss of one of these is refused, one in the ONNX domain (`ai.onnx.X`) must be one of them
// (src/topology/read-device.ts); any other name is a task graph's own or another domain's op.
//
// Sources: the ONNX operator index (onnx.ai, docs/Operators.md: the ai.onnx domain through opset
// 24 and ai.onnx.ml, deprecated ones included: old models carry them), onnxruntime's
// docs/ContribOperators.md (com.microsoft), and the ops hxc's shape rules know.

import { RULE_OPS } from '../shapes/infer.js';

const ONNX_MAIN = `Abs Acos Acosh Add AffineGrid And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool
BatchNormalization Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow Cast CastLike Ceil
Celu CenterCropPad Clip Col2Im Compress Concat ConcatFromSequence Constant ConstantOfShape Conv ConvInteger
ConvTranspose Cos Cosh CumSum DFT DeformConv DepthToSpace DequantizeLinear Det Div Dropout DynamicQuantizeLinear
Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather GatherElements GatherND Gelu Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization HammingWindow
HannWindow HardSigmoid HardSwish Hardmax Identity If ImageDecoder InstanceNormalization IsInf IsNaN LRN LSTM
LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul MatMulInteger Max
MaxPool MaxRoiPool MaxUnpool Mean MeanVarianceNormalization MelWeightMatrix Min Mish Mod Mul Multinomial Neg
NegativeLogLikelihoodLoss NonMaxSuppression NonZero Not OneHot Optional OptionalGetElement OptionalHasElement Or
PRelu Pad Pow QLinearConv QLinearMatMul QuantizeLinear RMSNormalization RNN RandomNormal RandomNormalLike
RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare RegexFullMatch Relu Reshape Resize ReverseSequence
RoiAlign RotaryEmbedding Round STFT Scan Scatter ScatterElements ScatterND Selu SequenceAt SequenceConstruct
SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap Shape Shrink Sigmoid Sign Sin Sinh Size Slice
Softmax SoftmaxCrossEntropyLoss Softplus Softsign SpaceToDepth Split SplitToSequence Sqrt Squeeze StringConcat
StringNormalizer StringSplit Sub Sum Swish Tan Tanh TensorScatter TfIdfVectorizer ThresholdedRelu Tile TopK
Transpose Trilu Unique Unsqueeze Upsample Where Xor
Affine Crop DynamicSlice GivenTensorFill ImageScaler ParametricSoftplus ScaledTanh`;

const ONNX_ML = `ArrayFeatureExtractor Binarizer CastMap CategoryMapper DictVectorizer FeatureVectorizer Imputer
LabelEncoder LinearClassifier LinearRegressor Normalizer OneHotEncoder SVMClassifier SVMRegressor Scaler
TreeEnsemble TreeEnsembleClassifier TreeEnsembleRegressor ZipMap`;

const COM_MICROSOFT = `Attention AttnLSTM BeamSearch BiasAdd BiasDropout BiasGelu BiasSoftmax BiasSplitGelu
BifurcationDetector BitmaskBiasDropout BitmaskDropout CDist ComplexMul ComplexMulConj ConvTransposeWithDynamicPads
CropAndResize DecoderAttention DecoderMaskedMultiHeadAttention DecoderMaskedSelfAttention DequantizeBFP
DequantizeLinear DequantizeWithOrder DynamicQuantizeLSTM DynamicQuantizeMatMul DynamicTimeWarping
EmbedLayerNormalization ExpandDims FastGelu FusedConv FusedGemm FusedMatMul FusedMatMulActivation
GatedRelativePositionBias GatherBlockQuantized GatherND Gelu GemmFastGelu GemmFloat8 GemmaRotaryEmbedding
GreedySearch GridSample GroupNorm GroupQueryAttention Inverse Irfft LongformerAttention MatMulBnb4 MatMulFpQ4
MatMulInteger16 MatMulIntegerToFloat MatMulNBits MaxpoolWithMask MoE MulInteger MultiHeadAttention MurmurHash3
NGramRepeatBlock NhwcConv NhwcFusedConv NhwcMaxPool PackedAttention PackedMultiHeadAttention PagedAttention Pad
QAttention QEmbedLayerNormalization QGemm QLinearAdd QLinearAveragePool QLinearConcat QLinearConv
QLinearGlobalAveragePool QLinearLeakyRelu QLinearMul QLinearReduceMean QLinearSigmoid QLinearSoftmax QLinearWhere
QMoE QOrderedAttention QOrderedGelu QOrderedLayerNormalization QOrderedLongformerAttention QOrderedMatMul
QuantizeBFP QuantizeLinear QuantizeWithOrder QuickGelu Range ReduceSumInteger RelativePositionBias RemovePadding
RestorePadding Rfft RotaryEmbedding SampleOp Sampling SimplifiedLayerNormalization SkipGroupNorm
SkipLayerNormalization SkipSimplifiedLayerNormalization Snpe SparseAttention SparseToDenseMatMul Tokenizer
TorchEmbedding TransposeMatMul Trilu UnfoldTensor Unique WhisperBeamSearch WordConvEmbedding`;

/** Every operator name an entry without a domain may give, sorted. */
export const KNOWN_OP_NAMES: readonly string[] = [
  ...new Set([...[ONNX_MAIN, ONNX_ML, COM_MICROSOFT].flatMap((list) => list.split(/\s+/).filter((s) => s.length > 0)), ...RULE_OPS]),
].sort();

const known = new Set(KNOWN_OP_NAMES);

/** Whether `name` (an ops entry without a domain) is an operator hxc knows. */
export function isKnownOpName(name: string): boolean {
  return known.has(name);
}
