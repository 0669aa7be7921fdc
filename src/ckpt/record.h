// What a shard file holds: a vector of records, each one contiguous element range of one tensor
// of the model or optimizer state, keyed by parameter name, kind and GLOBAL expert id (never a
// rank-local index), so that a checkpoint can be loaded at any parallel layout.
//
// Kinds: "value" (the parameter), "adam_m" / "adam_v" (AdamW moments), "momentum" (SGD),
// "expert_bias" (the aux-loss-free balancing bias of a MoE layer, name
// "blocks.<l>.moe.expert_bias"). Ranges: [begin, end) in elements of the whole tensor (dense,
// expert = -1) or of one expert's slice of it (expert >= 0), both in row-major order.
#pragma once
#include <boost/serialization/array_wrapper.hpp>
#include <boost/serialization/split_member.hpp>
#include <boost/serialization/string.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "src/ckpt/record_key.h"
#include "src/core/error.h"

namespace moe::ckpt {

struct Record {
  RecordKey key;
  std::vector<float> data;  // end - begin elements (after loading)
  // When saving: the elements to write, if not in `data` (lets host tensors be written without a
  // copy). Serialized exactly as `data` would be.
  const float* view = nullptr;

  int64_t size() const { return key.end - key.begin; }

  template <class Ar>
  void save(Ar& ar, unsigned) const {
    ar& key.kind& key.name& key.expert& key.begin& key.end;
    int64_t n = size();
    ar& n;
    const float* p = view ? view : data.data();
    ar& boost::serialization::make_array(const_cast<float*>(p), size_t(n));
  }
  template <class Ar>
  void load(Ar& ar, unsigned) {
    ar& key.kind& key.name& key.expert& key.begin& key.end;
    int64_t n = 0;
    ar& n;
    // The shard's checksum was verified before parsing, so a bad count means a writer bug.
    MOE_CHECK(n >= 0 && n == key.end - key.begin, "record ", key.name, " holds ", n,
              " elements for range [", key.begin, ", ", key.end, ")");
    data.resize(size_t(n));
    ar& boost::serialization::make_array(data.data(), size_t(n));
  }
  BOOST_SERIALIZATION_SPLIT_MEMBER()
};

// One shard file: which rank wrote it, at which step, and its records.
struct Shard {
  int64_t version = kFormatVersion;
  int64_t rank = 0, step = 0;
  std::vector<Record> records;

  template <class Ar>
  void save(Ar& ar, unsigned) const {
    ar& version& rank& step;
    int64_t n = int64_t(records.size());
    ar& n;
    for (const Record& r : records) ar& r;
  }
  template <class Ar>
  void load(Ar& ar, unsigned) {
    ar& version& rank& step;
    int64_t n = 0;
    ar& n;
    MOE_CHECK(n >= 0, "negative record count");
    records.resize(size_t(n));
    for (Record& r : records) ar& r;
  }
  BOOST_SERIALIZATION_SPLIT_MEMBER()
};

}  // namespace moe::ckpt
