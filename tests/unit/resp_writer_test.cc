#include "api/resp_writer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace edgeflow::api {
namespace {

TEST(RespWriterTest, EncodesEveryReplyType) {
  RespWriter w;
  w.Ok();
  w.SimpleString("PONG");
  w.Error("ERR something failed");
  w.Integer(0);
  w.Integer(-2);
  w.Integer(std::numeric_limits<int64_t>::max());
  w.Integer(std::numeric_limits<int64_t>::min());
  w.Bulk(std::string_view("hello"));
  w.Bulk(std::string_view(""));
  w.NullBulk();
  w.NullArray();
  w.ArrayHeader(2);
  w.ArrayHeader(0);
  EXPECT_EQ(w.ToString(),
            "+OK\r\n+PONG\r\n-ERR something failed\r\n:0\r\n:-2\r\n:9223372036854775807\r\n"
            ":-9223372036854775808\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*2\r\n*0\r\n");
  EXPECT_EQ(w.size(), w.ToString().size());
}

TEST(RespWriterTest, BulkIsBinarySafe) {
  RespWriter w;
  const std::string value("a\r\n\0b", 5);
  w.Bulk(std::string_view(value));
  EXPECT_EQ(w.ToString(), std::string("$5\r\na\r\n\0b\r\n", 11));
}

TEST(RespWriterTest, ErrorMessagesCannotBreakFraming) {
  RespWriter w;
  w.Error("ERR unknown command 'a\r\n+OK'");
  EXPECT_EQ(w.ToString(), "-ERR unknown command 'a  +OK'\r\n");
}

TEST(RespWriterTest, LargeValuesAreKeptNotCopied) {
  RespWriter w;
  std::string big(RespWriter::kKeepThresholdBytes + 10, 'x');
  const char* data = big.data();
  w.Bulk(std::string_view("small"));
  w.Bulk(std::move(big));
  w.Integer(7);
  std::string big2(RespWriter::kKeepThresholdBytes, 'y');
  w.Bulk(std::move(big2));
  std::vector<std::string_view> pieces;
  w.Pieces(&pieces);
  ASSERT_EQ(pieces.size(), 5u);
  EXPECT_EQ(pieces[1].data(), data);  // the very same bytes
  EXPECT_EQ(pieces[0],
            "$5\r\nsmall\r\n$" + std::to_string(RespWriter::kKeepThresholdBytes + 10) + "\r\n");
  EXPECT_EQ(pieces[2], "\r\n:7\r\n$" + std::to_string(RespWriter::kKeepThresholdBytes) + "\r\n");
  EXPECT_EQ(pieces[3].size(), RespWriter::kKeepThresholdBytes);
  EXPECT_EQ(pieces[4], "\r\n");
  size_t total = 0;
  for (auto p : pieces) total += p.size();
  EXPECT_EQ(total, w.size());
}

TEST(RespWriterTest, SharedValuesAreReferencedAndKeptAlive) {
  auto record = std::make_shared<const std::string>(
      "header" + std::string(RespWriter::kShareThresholdBytes, 'v') + "trailer");
  const std::string_view value =
      std::string_view(*record).substr(6, RespWriter::kShareThresholdBytes);
  RespWriter w;
  w.Bulk(value, record);
  w.Bulk(std::string_view(*record).substr(0, 6), record);  // below the threshold: copied
  EXPECT_EQ(record.use_count(), 2);  // the writer holds it once, for the referenced piece
  std::vector<std::string_view> pieces;
  w.Pieces(&pieces);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[1].data(), value.data());
  EXPECT_EQ(pieces[2], "\r\n$6\r\nheader\r\n");
  EXPECT_EQ(w.ToString(), "$" + std::to_string(value.size()) + "\r\n" + std::string(value) +
                              "\r\n$6\r\nheader\r\n");
  w.Clear();
  EXPECT_EQ(record.use_count(), 1);
}

TEST(RespWriterTest, SmallRvalueIsCopied) {
  RespWriter w;
  w.Bulk(std::string("abc"));
  std::vector<std::string_view> pieces;
  w.Pieces(&pieces);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0], "$3\r\nabc\r\n");
}

TEST(RespWriterTest, ClearEmptiesButCanBeReused) {
  RespWriter w;
  w.Bulk(std::string(RespWriter::kKeepThresholdBytes, 'z'));
  EXPECT_FALSE(w.empty());
  w.Clear();
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(w.ToString(), "");
  w.Ok();
  EXPECT_EQ(w.ToString(), "+OK\r\n");
}

}  // namespace
}  // namespace edgeflow::api
