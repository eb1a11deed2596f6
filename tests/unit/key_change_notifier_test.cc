// Tests of KeyChangeNotifier against a real Mosquitto (supervised, on a free loopback port) and a
// real store, each in a per-test directory: what a subscriber of the rule's channel receives for
// writes to the store, across notifier restarts and while the broker is away.
//
// Absence ("nothing announced for X") is checked without sleeping: the notifier announces in
// commit order on one topic with QoS 1 from one connection, which MQTT delivers in order, so once
// a matching write made after X has arrived, an announcement of X would have arrived before it.
#include "channels/key_change_notifier.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "channels/broker_supervisor.h"
#include "channels/channel_name.h"
#include "channels/envelope.h"
#include "support/mqtt_inbox.h"
#include "support/temp_dir.h"

namespace edgeflow::channels {
namespace {

using Inbox = test_support::MqttInbox;

using namespace std::chrono_literals;

constexpr auto kDeliveryTimeout = 20s;

// What a change message says, in a form tests can compare.
struct Announcement {
  Envelope::Change change = Envelope::Change::kNone;
  std::string ns;
  std::string key;
  std::string version;
  bool operator==(const Announcement&) const = default;
};

void PrintTo(const Announcement& a, std::ostream* os) {
  *os << (a.change == Envelope::Change::kPut      ? "put "
          : a.change == Envelope::Change::kDelete ? "delete "
                                                  : "none ")
      << a.ns << "/" << a.key << "@" << a.version;
}

Announcement Put(std::string ns, std::string key, const kv::WriteResult& written) {
  return {Envelope::Change::kPut, std::move(ns), std::move(key), written.version.ToString()};
}
Announcement Deleted(std::string ns, std::string key, const kv::WriteResult& written) {
  return {Envelope::Change::kDelete, std::move(ns), std::move(key), written.version.ToString()};
}

// The announcements in `messages`, in order; a message that is no change notification fails the
// test and reads as an empty Announcement.
std::vector<Announcement> Decode(const std::vector<MqttMessage>& messages) {
  std::vector<Announcement> out;
  for (const MqttMessage& m : messages) {
    auto envelope = ReadEnvelope(m);
    EXPECT_TRUE(envelope) << envelope.error().ToString();
    if (!envelope || !envelope->ref) {
      out.emplace_back();
      continue;
    }
    out.push_back(
        {envelope->change, envelope->ref->ns, envelope->ref->key, envelope->ref->version});
  }
  return out;
}

// Polls `done` every 10 ms until it holds or `timeout` passed.
template <typename Predicate>
bool Eventually(Predicate done, std::chrono::milliseconds timeout = kDeliveryTimeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

class KeyChangeNotifierTest : public ::testing::Test {
 protected:
  static constexpr const char* kChannel = "changes/cams";

  void SetUp() override {
    broker_ = StartBroker(HostPort{"127.0.0.1", 0});
    ASSERT_NE(broker_, nullptr);

    kv::StoreOptions options;
    options.dir = dir_.Sub("kv");
    options.block_cache_bytes = 8 << 20;
    options.write_buffer_bytes = 4 << 20;
    options.record_cache_bytes = 1 << 20;
    auto store = kv::Store::Open(options);
    ASSERT_TRUE(store) << store.error().ToString();
    store_ = std::move(*store);

    notifier_client_ = Client("edgeflowd-notifier", /*persistent=*/false, nullptr);
    ASSERT_NE(notifier_client_, nullptr);
    ASSERT_TRUE(notifier_client_->WaitConnected(5s));
  }

  void TearDown() override {
    // The notifier uses the client and the store: it goes first.
    notifier_.reset();
    notifier_client_.reset();
  }

  // A broker in dir_/mqtt (the same directory every time, so a broker started again finds the
  // sessions the last one saved).
  std::unique_ptr<BrokerSupervisor> StartBroker(HostPort listen) {
    BrokerConfig config;
    config.dir = dir_.Sub("mqtt");
    config.listen = std::move(listen);
    config.ws_listen.reset();
    config.autosave_seconds = 1;
    auto supervisor = BrokerSupervisor::Create(config);
    EXPECT_TRUE(supervisor) << supervisor.error().ToString();
    if (!supervisor) return nullptr;
    Status started = (*supervisor)->Start();
    EXPECT_TRUE(started.ok()) << started.ToString();
    if (!started.ok()) return nullptr;
    return std::move(*supervisor);
  }

  std::unique_ptr<MqttClient> Client(const std::string& id, bool persistent, Inbox* inbox) {
    MqttClientOptions options;
    options.broker = broker_->mqtt_address();
    options.client_id = id;
    options.persistent_session = persistent;
    auto client = MqttClient::Create(options);
    EXPECT_TRUE(client) << client.error().ToString();
    if (!client) return nullptr;
    if (inbox != nullptr) {
      (*client)->SetMessageHandler([inbox](const MqttMessage& m) { inbox->Add(m); });
    }
    EXPECT_TRUE((*client)->Start().ok());
    return std::move(*client);
  }

  // A connected client subscribed (QoS 1) to the rule's channel.
  std::unique_ptr<MqttClient> Subscriber(Inbox* inbox, const std::string& id = "sub",
                                         bool persistent = false) {
    auto client = Client(id, persistent, inbox);
    EXPECT_TRUE(client && client->WaitConnected(5s));
    if (client) {
      EXPECT_TRUE(client->Subscribe(ChannelTopic("default", kChannel), 1).ok());
    }
    return client;
  }

  // A started notifier with one rule: keys of "cams" starting with "front/".
  std::unique_ptr<KeyChangeNotifier> StartNotifier() {
    auto created = KeyChangeNotifier::Create({NotifyRule{"cams", "front/", kChannel}}, "default",
                                             store_.get(), notifier_client_.get());
    EXPECT_TRUE(created) << created.error().ToString();
    if (!created) return nullptr;
    Status started = (*created)->Start();
    EXPECT_TRUE(started.ok()) << started.ToString();
    return std::move(*created);
  }

  kv::WriteResult MustPut(std::string_view ns, std::string_view key, std::string_view value,
                          const kv::PutOptions& options = {}) {
    auto written = store_->Put(ns, key, value, options);
    EXPECT_TRUE(written) << written.error().ToString();
    return written ? *written : kv::WriteResult{};
  }
  kv::WriteResult MustDelete(std::string_view ns, std::string_view key) {
    auto written = store_->Delete(ns, key);
    EXPECT_TRUE(written) << written.error().ToString();
    return written ? *written : kv::WriteResult{};
  }

  test_support::TempDir dir_;
  std::unique_ptr<BrokerSupervisor> broker_;
  std::unique_ptr<kv::Store> store_;
  std::unique_ptr<MqttClient> notifier_client_;
  std::unique_ptr<KeyChangeNotifier> notifier_;
};

TEST_F(KeyChangeNotifierTest, AnnouncesPutsAndDeletesOfMatchingKeysByReference) {
  Inbox inbox;
  auto subscriber = Subscriber(&inbox);
  notifier_ = StartNotifier();
  ASSERT_NE(notifier_, nullptr);

  kv::PutOptions typed;
  typed.content_type = "text/plain";
  const kv::WriteResult put1 = MustPut("cams", "front/1", "hello", typed);
  MustPut("other", "front/1", "another namespace");
  MustPut("cams", "back/1", "outside the prefix");
  MustPut("cams", "front", "the prefix without its slash");
  const kv::WriteResult del1 = MustDelete("cams", "front/1");
  kv::PutOptions expiring;
  expiring.ttl_ms = 3600 * 1000;
  const kv::WriteResult put2 = MustPut("cams", "front/2", std::string(300, 'x'), expiring);

  const std::vector<MqttMessage> got = inbox.WaitFor(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(Decode(got), (std::vector<Announcement>{Put("cams", "front/1", put1),
                                                    Deleted("cams", "front/1", del1),
                                                    Put("cams", "front/2", put2)}));

  // A put: by reference (no payload), with the item's size, content type and key as item id.
  auto first = ReadEnvelope(got[0]);
  ASSERT_TRUE(first);
  EXPECT_EQ(got[0].topic, ChannelTopic("default", kChannel));
  EXPECT_TRUE(got[0].payload.empty());
  EXPECT_FALSE(first->inline_data);
  EXPECT_EQ(first->size, 5u);
  EXPECT_EQ(first->content_type, "text/plain");
  EXPECT_EQ(first->item_id, "front/1");
  EXPECT_EQ(first->expiry_seconds, 0u);  // the item does not expire, so neither does the message
  EXPECT_GT(first->produced_at_ms, 0);
  EXPECT_EQ(first->produced_at_ms, put1.version.PhysicalMillis());
  // A delete carries no data.
  auto second = ReadEnvelope(got[1]);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->size, 0u);
  EXPECT_TRUE(got[1].payload.empty());
  // An expiring item's message expires with it, not later.
  auto third = ReadEnvelope(got[2]);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->size, 300u);
  EXPECT_GT(third->expiry_seconds, 0u);
  EXPECT_LE(third->expiry_seconds, 3600u);

  EXPECT_TRUE(Eventually([&] { return notifier_->published() == 3; })) << notifier_->published();
  EXPECT_EQ(notifier_->publish_failures(), 0u);
  EXPECT_EQ(notifier_->skipped_records(), 0u);
}

TEST_F(KeyChangeNotifierTest, AnEmptyPrefixWatchesTheWholeNamespaceOnly) {
  Inbox inbox;
  auto subscriber = Subscriber(&inbox);
  auto created = KeyChangeNotifier::Create({NotifyRule{"cams", "", kChannel}}, "default",
                                           store_.get(), notifier_client_.get());
  ASSERT_TRUE(created);
  notifier_ = std::move(*created);
  ASSERT_TRUE(notifier_->Start().ok());

  const kv::WriteResult a = MustPut("cams", "a", "1");
  MustPut("camsx", "b", "a namespace with the same beginning");
  const kv::WriteResult z = MustPut("cams", "z/y", "2");
  EXPECT_EQ(Decode(inbox.WaitFor(2)),
            (std::vector<Announcement>{Put("cams", "a", a), Put("cams", "z/y", z)}));
}

TEST_F(KeyChangeNotifierTest, WritesOfABatchAreAnnouncedInCommitOrder) {
  Inbox inbox;
  auto subscriber = Subscriber(&inbox);
  notifier_ = StartNotifier();
  ASSERT_NE(notifier_, nullptr);

  const kv::WriteResult old = MustPut("cams", "front/old", "to be deleted in the batch");
  auto op = [](kv::WriteOp::Kind kind, std::string_view ns, std::string_view key) {
    kv::WriteOp w;
    w.kind = kind;
    w.ns = ns;
    w.key = key;
    w.value = "v";
    return w;
  };
  using Kind = kv::WriteOp::Kind;
  const std::vector<kv::WriteOp> batch = {
      op(Kind::kPut, "cams", "front/b"),      op(Kind::kPut, "other", "front/x"),
      op(Kind::kDelete, "cams", "front/old"), op(Kind::kPut, "cams", "back/x"),
      op(Kind::kPut, "cams", "front/a"),      op(Kind::kPut, "cams", "front/b"),
  };
  auto results = store_->Apply(batch);
  ASSERT_TRUE(results) << results.error().ToString();
  ASSERT_EQ(results->size(), batch.size());
  for (const auto& r : *results) ASSERT_TRUE(r) << r.error().ToString();
  // A second batch after it: the order holds across commits too.
  const std::vector<kv::WriteOp> batch2 = {op(Kind::kDelete, "cams", "front/a")};
  auto results2 = store_->Apply(batch2);
  ASSERT_TRUE(results2 && (*results2)[0]);

  const std::vector<Announcement> expected = {
      Put("cams", "front/old", old),
      Put("cams", "front/b", *(*results)[0]),
      Deleted("cams", "front/old", *(*results)[2]),
      Put("cams", "front/a", *(*results)[4]),
      Put("cams", "front/b", *(*results)[5]),
      Deleted("cams", "front/a", *(*results2)[0]),
  };
  EXPECT_EQ(Decode(inbox.WaitFor(expected.size())), expected);
}

TEST_F(KeyChangeNotifierTest, ANewNotifierResumesAfterThePositionSavedAtStop) {
  Inbox inbox;
  auto subscriber = Subscriber(&inbox);
  notifier_ = StartNotifier();
  ASSERT_NE(notifier_, nullptr);
  const kv::WriteResult p1 = MustPut("cams", "front/1", "a");
  ASSERT_EQ(inbox.WaitFor(1).size(), 1u);
  notifier_->Stop();
  notifier_.reset();

  // The position is in the store, past the announced change.
  auto saved = store_->Get(kv::kNodeStateNamespace, std::string("notify/cams/") + kChannel);
  ASSERT_TRUE(saved) << saved.error().ToString();
  uint64_t position = 0;
  const std::string& text = saved->value;
  ASSERT_EQ(std::from_chars(text.data(), text.data() + text.size(), position).ec, std::errc())
      << text;
  EXPECT_GT(position, p1.seq);

  // Changes while no notifier runs wait in the change log.
  const kv::WriteResult p2 = MustPut("cams", "front/2", "b");
  const kv::WriteResult d1 = MustDelete("cams", "front/1");
  MustPut("cams", "back/3", "outside the prefix");
  ASSERT_EQ(inbox.messages().size(), 1u);

  notifier_ = StartNotifier();
  ASSERT_NE(notifier_, nullptr);
  const kv::WriteResult p4 = MustPut("cams", "front/4", "after the new start");
  // front/1 is not announced again: had it been, it would come before front/2.
  EXPECT_EQ(
      Decode(inbox.WaitFor(4)),
      (std::vector<Announcement>{Put("cams", "front/1", p1), Put("cams", "front/2", p2),
                                 Deleted("cams", "front/1", d1), Put("cams", "front/4", p4)}));
}

// A notifier that ran without announcing anything (no matching write happened) has a position
// too: Stop() is documented to save the positions, and a restart to resume where the rule was.
// Otherwise the next Start() would begin after the newest change, and front/1, written while no
// notifier ran, would never be announced.
TEST_F(KeyChangeNotifierTest, ARuleThatAnnouncedNothingYetStillResumesWhereItStopped) {
  Inbox inbox;
  auto subscriber = Subscriber(&inbox);
  notifier_ = StartNotifier();
  ASSERT_NE(notifier_, nullptr);
  MustPut("cams", "back/0", "not announced");
  notifier_->Stop();
  notifier_.reset();

  const kv::WriteResult p1 = MustPut("cams", "front/1", "written while no notifier ran");
  notifier_ = StartNotifier();
  ASSERT_NE(notifier_, nullptr);
  const kv::WriteResult p2 = MustPut("cams", "front/2", "after the new start");
  EXPECT_EQ(Decode(inbox.WaitFor(2)),
            (std::vector<Announcement>{Put("cams", "front/1", p1), Put("cams", "front/2", p2)}));
}

// The broker stops (deliberately, so the supervisor does not restart it) and a new one starts
// later on the same port and directory. The subscriber's persistent session, saved by the broker
// at shutdown, makes the new broker queue announcements for it from its first moment, so nothing
// depends on which client reconnects first.
TEST_F(KeyChangeNotifierTest, ChangesMadeWhileTheBrokerIsDownAreAnnouncedWhenItIsBack) {
  Inbox inbox;
  auto subscriber = Subscriber(&inbox, "persistent-sub", /*persistent=*/true);
  notifier_ = StartNotifier();
  ASSERT_NE(notifier_, nullptr);
  const kv::WriteResult p1 = MustPut("cams", "front/1", "before");
  ASSERT_EQ(inbox.WaitFor(1).size(), 1u);

  const HostPort address = broker_->mqtt_address();
  broker_->Stop();
  ASSERT_TRUE(Eventually([&] { return !notifier_client_->connected(); }, 10s));

  const kv::WriteResult p2 = MustPut("cams", "front/2", "while down");
  const kv::WriteResult d1 = MustDelete("cams", "front/1");
  const kv::WriteResult p3 = MustPut("cams", "front/3", "while down too");
  // The notifier tried, failed, and keeps the changes for later.
  ASSERT_TRUE(Eventually([&] { return notifier_->publish_failures() >= 1; }))
      << "the notifier never tried to announce while the broker was down";
  EXPECT_EQ(notifier_->published(), 1u);

  auto restarted = StartBroker(address);
  ASSERT_NE(restarted, nullptr);
  ASSERT_EQ(restarted->mqtt_address().port, address.port);

  // Delivery is at least once: a change may be announced more than once (an attempt that timed
  // out may still go out), but each arrives, and the first arrivals are in commit order.
  const std::vector<Announcement> expected = {
      Put("cams", "front/1", p1), Put("cams", "front/2", p2), Deleted("cams", "front/1", d1),
      Put("cams", "front/3", p3)};
  std::vector<Announcement> distinct;
  Eventually([&] {
    distinct.clear();
    for (const Announcement& a : Decode(inbox.messages())) {
      if (std::find(distinct.begin(), distinct.end(), a) == distinct.end()) distinct.push_back(a);
    }
    return distinct.size() >= expected.size();
  });
  EXPECT_EQ(distinct, expected);
  EXPECT_TRUE(Eventually([&] { return notifier_->published() == 4; })) << notifier_->published();

  // Stop the notifier before the broker it now uses goes away with this scope.
  notifier_.reset();
  subscriber.reset();
  notifier_client_.reset();
}

TEST(NotifyRulesTest, BadRulesAreRejectedNamingTheRule) {
  EXPECT_TRUE(ValidateNotifyRules({}).ok());
  EXPECT_TRUE(ValidateNotifyRules({{"cams", "", "a"}, {"cams.v2", "front/", "a/b-c_d.e"}}).ok());

  struct Case {
    std::vector<NotifyRule> rules;
    std::string expected_in_message;
  };
  const std::vector<Case> cases = {
      {{{"", "", "ch"}}, "notify rule 1: namespace"},
      {{{"cams", "", "ch"}, {"bad ns", "", "ch"}}, "notify rule 2: namespace"},
      {{{std::string(65, 'n'), "", "ch"}}, "notify rule 1: namespace"},
      {{{"_edgeflow", "", "ch"}}, "notify rule 1: namespace '_edgeflow'"},
      {{{"cams", "", "ch"}, {"cams", "", "ch"}, {"cams", "", "a/+"}}, "notify rule 3: channel"},
      {{{"cams", "", ""}}, "notify rule 1: channel name is empty"},
      {{{"cams", "", "a//b"}}, "notify rule 1: channel"},
      {{{"cams", "", "#"}}, "notify rule 1: channel"},
  };
  for (const Case& c : cases) {
    Status s = ValidateNotifyRules(c.rules);
    ASSERT_FALSE(s.ok()) << c.expected_in_message;
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.expected_in_message), std::string::npos) << s.message();
  }
}

TEST(NotifyRulesTest, CreateRejectsBadRulesAndABadTenant) {
  // Validation happens before anything is used, so no store or client is needed.
  auto bad_rule = KeyChangeNotifier::Create({{"_edgeflow", "", "ch"}}, "default", nullptr, nullptr);
  ASSERT_FALSE(bad_rule);
  EXPECT_EQ(bad_rule.error().code(), ErrorCode::kInvalidArgument);
  auto bad_tenant = KeyChangeNotifier::Create({{"cams", "", "ch"}}, "a/b", nullptr, nullptr);
  ASSERT_FALSE(bad_tenant);
  EXPECT_EQ(bad_tenant.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace edgeflow::channels
