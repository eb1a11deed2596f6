// The node's side of the worker protocol's framing (docs/function-protocol.md): round trips,
// and every way a frame can be malformed or oversized.
#include "runtime/worker_frame.h"
#include "runtime/worker_frame_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

namespace edgeflow::runtime {
namespace {

using namespace std::chrono_literals;

// A frame whose length prefix says `header_size`, followed by `header` and `rest` as given.
std::string Raw(uint32_t header_size, std::string_view header, std::string_view rest = "") {
  std::string out;
  out.push_back(static_cast<char>(header_size >> 24));
  out.push_back(static_cast<char>(header_size >> 16));
  out.push_back(static_cast<char>(header_size >> 8));
  out.push_back(static_cast<char>(header_size));
  out += header;
  out += rest;
  return out;
}

std::string AllBytes() {
  std::string out;
  for (int i = 0; i < 256; ++i) out.push_back(static_cast<char>(i));
  return out;
}

TEST(WorkerFrameTest, RoundTripsHeaderAndBinaryBlobs) {
  WorkerFrame frame;
  frame.header["type"] = "invoke";
  frame.header["id"] = 7;
  const size_t a = frame.AddBlob(AllBytes());
  const size_t b = frame.AddBlob("");
  frame.header["inputs"] = {{{"name", "x"}, {"blob", a}}, {{"name", "y"}, {"blob", b}}};
  const std::string bytes = EncodeWorkerFrame(frame);
  auto decoded = DecodeWorkerFrame(bytes, {});
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(decoded->second, bytes.size());
  EXPECT_EQ(decoded->first.type(), "invoke");
  EXPECT_EQ(decoded->first.header["id"], 7);
  ASSERT_EQ(decoded->first.blobs.size(), 2u);
  auto x = decoded->first.BlobOf(decoded->first.header["inputs"][0]);
  ASSERT_TRUE(x.has_value());
  EXPECT_EQ(**x, AllBytes());
  auto y = decoded->first.BlobOf(decoded->first.header["inputs"][1]);
  ASSERT_TRUE(y.has_value());
  EXPECT_EQ(**y, "");
}

TEST(WorkerFrameTest, RejectsMalformedFrames) {
  const FrameLimits limits;
  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  };
  const std::string ok = R"({"type":"result"})";
  auto exact = [](std::string_view header, std::string_view rest = "") {
    return Raw(static_cast<uint32_t>(header.size()), header, rest);
  };
  const std::vector<Case> cases = {
      {"short length", std::string("\0\0", 2), "truncated"},
      {"zero header", Raw(0, ""), "header length 0"},
      {"huge header", Raw(0x7fffffff, "{}"), "header length"},
      {"truncated header", Raw(50, ok), "truncated"},
      {"not json", exact("hello"), "not valid JSON"},
      {"not an object", exact("[1,2,3]"), "not a JSON object"},
      {"no type", exact(R"({"a":1})"), "no \"type\""},
      {"type not string", exact(R"({"type":1})"), "no \"type\""},
      {"blobs not array", exact(R"({"type":"result","blobs":3})"), "must be an array"},
      {"negative size", exact(R"({"type":"result","blobs":[-1]})"), "non-negative"},
      {"missing blob bytes", exact(R"({"type":"result","blobs":[5]})", "abc"), "truncated"},
  };
  for (const Case& c : cases) {
    auto decoded = DecodeWorkerFrame(c.bytes, limits);
    ASSERT_FALSE(decoded.has_value()) << c.what;
    EXPECT_NE(decoded.error().message().find(c.message), std::string::npos)
        << c.what << ": " << decoded.error().message();
  }
}

TEST(WorkerFrameTest, EnforcesBlobLimitsBeforeReadingTheData) {
  FrameLimits limits;
  limits.max_blob_bytes = 100;
  limits.max_total_blob_bytes = 150;
  std::vector<uint64_t> sizes;
  auto one = DecodeFrameHeader(R"({"type":"result","blobs":[101]})", limits, &sizes);
  ASSERT_FALSE(one.has_value());
  EXPECT_TRUE(one.error().Is(ErrorCode::kResourceExhausted));
  EXPECT_NE(one.error().message().find("over the limit of 100 bytes"), std::string::npos);
  auto total = DecodeFrameHeader(R"({"type":"result","blobs":[100,100]})", limits, &sizes);
  ASSERT_FALSE(total.has_value());
  EXPECT_TRUE(total.error().Is(ErrorCode::kResourceExhausted));
  // A size that would overflow 64 bits when summed is refused, not wrapped.
  auto wrap = DecodeFrameHeader(R"({"type":"result","blobs":[18446744073709551615]})", limits,
                                &sizes);
  EXPECT_FALSE(wrap.has_value());
}

TEST(WorkerFrameTest, BlobIndexMustBeInRange) {
  WorkerFrame frame;
  frame.header["type"] = "result";
  frame.AddBlob("x");
  EXPECT_FALSE(frame.BlobOf(nlohmann::json{{"blob", 1}}).has_value());
  EXPECT_FALSE(frame.BlobOf(nlohmann::json{{"blob", -1}}).has_value());
  EXPECT_FALSE(frame.BlobOf(nlohmann::json{{"blob", "0"}}).has_value());
  EXPECT_FALSE(frame.BlobOf(nlohmann::json::object()).has_value());
  EXPECT_TRUE(frame.BlobOf(nlohmann::json{{"blob", 0}}).has_value());
}

class PipeTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::pipe(fds_), 0); }
  void TearDown() override {
    CloseWriter();
    ::close(fds_[0]);
  }
  void CloseWriter() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }
  int fds_[2] = {-1, -1};
};

TEST_F(PipeTest, ReadsAFrameWrittenInPieces) {
  WorkerFrame frame;
  frame.header["type"] = "log";
  frame.AddBlob(std::string(10000, 'z'));
  const std::string bytes = EncodeWorkerFrame(frame);
  std::thread writer([&] {
    for (size_t i = 0; i < bytes.size(); i += 997) {
      ASSERT_TRUE(WriteAll(fds_[1], std::string_view(bytes).substr(i, 997)).ok());
      std::this_thread::sleep_for(1ms);
    }
  });
  WorkerFrameReader reader(fds_[0], {});
  auto read = reader.Next(std::chrono::steady_clock::now() + 5s);
  writer.join();
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  EXPECT_EQ(read->type(), "log");
  EXPECT_EQ(read->blobs.at(0), std::string(10000, 'z'));
}

TEST_F(PipeTest, TellsEndOfStreamFromATruncatedFrame) {
  CloseWriter();
  WorkerFrameReader reader(fds_[0], {});
  auto eof = reader.Next(std::chrono::steady_clock::now() + 1s);
  ASSERT_FALSE(eof.has_value());
  EXPECT_TRUE(eof.error().Is(ErrorCode::kOutOfRange));
}

TEST_F(PipeTest, ATruncatedFrameIsAProtocolError) {
  const std::string bytes = Raw(40, R"({"type":"result")");
  ASSERT_TRUE(WriteAll(fds_[1], bytes).ok());
  CloseWriter();
  WorkerFrameReader reader(fds_[0], {});
  auto read = reader.Next(std::chrono::steady_clock::now() + 1s);
  ASSERT_FALSE(read.has_value());
  EXPECT_TRUE(read.error().Is(ErrorCode::kInvalidArgument));
  EXPECT_NE(read.error().message().find("truncated"), std::string::npos);
}

TEST_F(PipeTest, GivesUpAtTheDeadline) {
  ASSERT_TRUE(WriteAll(fds_[1], std::string("\0\0", 2)).ok());  // half a length, then silence
  const auto begin = std::chrono::steady_clock::now();
  WorkerFrameReader reader(fds_[0], {});
  auto read = reader.Next(begin + 100ms);
  ASSERT_FALSE(read.has_value());
  EXPECT_TRUE(read.error().Is(ErrorCode::kDeadlineExceeded));
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);
}

TEST_F(PipeTest, HandsOutFramesWrittenTogetherOneByOne) {
  // Replies of a batch arrive in one write; the reader keeps what follows the frame it returns.
  std::string bytes;
  for (int i = 0; i < 3; ++i) {
    WorkerFrame frame;
    frame.header["type"] = "result";
    frame.header["id"] = i;
    frame.AddBlob(std::string(static_cast<size_t>(i) * 100, 'a' + static_cast<char>(i)));
    bytes += EncodeWorkerFrame(frame);
  }
  bytes += Raw(12, "");  // the start of a fourth frame: stays buffered
  ASSERT_TRUE(WriteAll(fds_[1], bytes).ok());
  WorkerFrameReader reader(fds_[0], {});
  for (int i = 0; i < 3; ++i) {
    auto read = reader.Next(std::chrono::steady_clock::now() + 1s);
    ASSERT_TRUE(read.has_value()) << read.error().ToString();
    EXPECT_EQ(read->header.at("id"), i);
    EXPECT_EQ(read->blobs.at(0).size(), static_cast<size_t>(i) * 100);
  }
  EXPECT_EQ(reader.buffered(), 4u);
  CloseWriter();
  auto truncated = reader.Next(std::chrono::steady_clock::now() + 1s);
  ASSERT_FALSE(truncated.has_value());
  EXPECT_TRUE(truncated.error().Is(ErrorCode::kInvalidArgument));
}

TEST_F(PipeTest, ReadsAFrameLargerThanOneReadChunk) {
  WorkerFrame frame;
  frame.header["type"] = "result";
  frame.AddBlob(std::string(3 << 20, 'q'));
  const std::string bytes = EncodeWorkerFrame(frame);
  std::thread writer([&] { ASSERT_TRUE(WriteAll(fds_[1], bytes).ok()); });
  WorkerFrameReader reader(fds_[0], {});
  auto read = reader.Next(std::chrono::steady_clock::now() + 5s);
  writer.join();
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  EXPECT_EQ(read->blobs.at(0), std::string(3 << 20, 'q'));
  EXPECT_EQ(reader.buffered(), 0u);
}

}  // namespace
}  // namespace edgeflow::runtime
