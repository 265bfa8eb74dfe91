//===- TensorSourceTest.cpp - one tensor at a time, by name ---------------===//
//
// openTensorFile lists a file's tensors without reading their data and then
// reads each one by name: the same names, shapes and values as readWeights,
// in every format; a bad or unexpected tensor is refused when the file is
// opened, an unknown name when it is read.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "vmoe/readers/TensorSource.h"
#include "vmoe/readers/Weights.h"

namespace vmoe::readers::test {
namespace {

TEST(TensorSource, ReadsEachTensorByNameInEveryFormat) {
  REQUIRE_TEST_DATA();
  for (const char *file :
       {"tiny.npz", "tiny_params_deflate.npz", "tiny.safetensors", "tiny_ckpt",
        "tiny_ckpt_sharded.index", "tiny_ckpt_trainstate"}) {
    SCOPED_TRACE(file);
    TensorMap all;
    std::string error;
    ASSERT_TRUE(readWeights(dataPath(file), all, &error)) << error;
    std::unique_ptr<TensorSource> source =
        openTensorFile(dataPath(file), &error);
    ASSERT_TRUE(source) << error;
    ASSERT_EQ(source->shapes().size(), all.size());
    // In reverse order: any order works.
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      EXPECT_EQ(source->shapes().at(it->first), it->second.shape);
      Tensor t;
      ASSERT_TRUE(source->read(it->first, t, &error)) << error;
      EXPECT_EQ(t.shape, it->second.shape) << it->first;
      EXPECT_EQ(t.data, it->second.data) << it->first;
    }
    Tensor t;
    EXPECT_FALSE(source->read("no/such/tensor", t, &error));
    EXPECT_NE(error.find("holds no tensor no/such/tensor"), std::string::npos)
        << error;
  }
}

TEST(TensorSource, RefusesUnexpectedTensorsWhenOpened) {
  REQUIRE_TEST_DATA();
  TensorMap all;
  std::string error;
  ASSERT_TRUE(readWeights(dataPath("tiny.npz"), all, &error)) << error;
  ExpectedShapes expected;
  for (auto &[name, tensor] : all)
    expected[name] = tensor.shape;
  std::string dropped = expected.begin()->first;
  expected.erase(dropped);
  ReadOptions options;
  options.expected = &expected;
  EXPECT_FALSE(openTensorFile(dataPath("tiny.npz"), &error, options));
  EXPECT_NE(error.find("unexpected weight " + dropped), std::string::npos)
      << error;
  // Missing tensors are the caller's to name.
  expected[dropped] = all[dropped].shape;
  expected["extra/one"] = {2, 3};
  std::unique_ptr<TensorSource> source =
      openTensorFile(dataPath("tiny.npz"), &error, options);
  ASSERT_TRUE(source) << error;
  EXPECT_EQ(missingTensor(*source, expected),
            "missing weight extra/one of shape (2, 3)");
}

TEST(TensorSource, MapSourceHandsOutItsTensors) {
  TensorMap map;
  map["a/kernel"] = Tensor{{2, 2}, {1, 2, 3, 4}, DType::F32};
  std::unique_ptr<TensorSource> source = tensorMapSource(map);
  Tensor t;
  std::string error;
  ASSERT_TRUE(source->read("a/kernel", t, &error));
  EXPECT_EQ(t.data, std::vector<float>({1, 2, 3, 4}));
  EXPECT_FALSE(source->read("b", t, &error));
  EXPECT_EQ(error, "no weight b");
}

} // namespace
} // namespace vmoe::readers::test
