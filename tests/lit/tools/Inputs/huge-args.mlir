// A model whose weight arguments take 275 GB: vmoe-compile-memory.test.
func.func @huge(%x: tensor<4x4xf32>, %w: tensor<65536x65536x16xf32>) -> tensor<4x4xf32> {
  return %x : tensor<4x4xf32>
}
