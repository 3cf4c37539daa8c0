// serving_check: loads a SavedModel version directory the way TensorFlow
// Serving does and runs its string signature on texts read from a file.
//
// Built by keras_siamese/export/serving_check_build.py and driven by
// keras_siamese/export/serving_check.py; see that module for the protocol.
// Steps, in TF Serving's order:
//   1. register op libraries (TF Text's, which TF Serving >= 2.20 links);
//   2. tensorflow::LoadSavedModel(..., {"serve"}, &bundle);
//   3. replay the predict requests of assets.extra/tf_serving_warmup_requests,
//      which serving_check.py decodes (`--warmup-requests`; `--warmup-error`
//      when it could not: this step fails with that reason);
//   4. run the signature on the texts, `--batch-size` texts per request;
//   5. with `--load-plan`, the concurrency stage: each planned request once alone
//      (the reference), then `--load-threads` threads that each send every
//      planned request, all at once through the one session, as concurrent
//      clients do; each answer is compared with its reference.
// Texts file: records of a little-endian uint32 byte length, then the bytes.
// Warmup requests file: per request, strings framed as in the texts file: the
// signature name; a uint32 input count, then each input's name and serialized
// TensorProto; a uint32 output_filter count, then each output name.
// Load plan: records of a uint32 count, then that many uint32 text indices.
// Embeddings file: the chosen float output of every request, concatenated
// along the batch axis, float32 in native byte order, row-major.
// stdout: one JSON object (the report); "ok": false with "stage" and "error"
// on failure. Exit status: 0 passed, 1 check failed, 2 bad usage.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor.pb.h"
#include "tensorflow/core/framework/tensor_shape.pb.h"
#include "tensorflow/core/framework/step_stats.pb.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/public/session.h"

namespace {

constexpr char kServeTag[] = "serve";  // TF Serving's default tag set.

// A failure at one stage of the check; reported as JSON, exit status 1.
struct CheckError {
  std::string stage;
  std::string message;
};

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

std::string Json(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {  // keeps the report plain ASCII
      char buffer[8];
      std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
      out += buffer;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string Json(double value) {
  if (std::isnan(value)) return "NaN";  // as Python's json module reads them
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.9g", value);
  return buffer;
}

template <typename T, typename Format>
std::string JsonList(const std::vector<T>& items, Format format) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    out += (i ? ", " : "") + format(items[i]);
  }
  return out + "]";
}

std::string TensorInfoJson(const tensorflow::TensorInfo& info) {
  std::vector<int64_t> dims;
  for (const auto& dim : info.tensor_shape().dim()) dims.push_back(dim.size());
  std::string shape = info.tensor_shape().unknown_rank()
                          ? "null"
                          : JsonList(dims, [](int64_t d) { return std::to_string(d); });
  return "{\"dtype\": " + Json(tensorflow::DataType_Name(info.dtype())) +
         ", \"shape\": " + shape + "}";
}

std::string TensorMapJson(
    const google::protobuf::Map<std::string, tensorflow::TensorInfo>& map) {
  std::map<std::string, const tensorflow::TensorInfo*> sorted;
  for (const auto& item : map) sorted[item.first] = &item.second;
  std::string out = "{";
  for (const auto& [alias, info] : sorted) {
    out += (out.size() > 1 ? ", " : "") + Json(alias) + ": " + TensorInfoJson(*info);
  }
  return out + "}";
}

// The parts of tensorflow.serving.PredictRequest that Predict uses.
struct PredictRequest {
  std::string signature_name;
  std::vector<std::pair<std::string, tensorflow::Tensor>> inputs;
  std::vector<std::string> output_filter;
};

// Counts the op types the session executed (after grappler and the oneDNN rewrite), by kernel
// launch: each node's timeline label reads "name = OpType(inputs)".
void CountExecutedOps(const tensorflow::RunMetadata& metadata,
                      std::map<std::string, int>* executed_ops) {
  for (const auto& device : metadata.step_stats().dev_stats()) {
    for (const auto& node : device.node_stats()) {
      const std::string& label = node.timeline_label();
      size_t start = label.find(" = ");
      size_t end = label.find('(', start == std::string::npos ? 0 : start);
      if (start == std::string::npos || end == std::string::npos) continue;
      ++(*executed_ops)[label.substr(start + 3, end - start - 3)];
    }
  }
}

// Runs `request` as TF Serving's Predict does: inputs must match the
// signature's inputs exactly; outputs are all of the signature's, or the filter.
// With `executed_ops`, traced, counting the op types that ran.
std::vector<tensorflow::Tensor> Predict(const tensorflow::SavedModelBundle& bundle,
                                        const PredictRequest& request,
                                        const std::string& stage,
                                        std::map<std::string, int>* executed_ops = nullptr) {
  const auto& signatures = bundle.meta_graph_def.signature_def();
  auto signature = signatures.find(request.signature_name);
  if (signature == signatures.end()) {
    throw CheckError{stage, "serving signature " + request.signature_name + " not found"};
  }
  const auto& inputs = signature->second.inputs();
  if (static_cast<int>(request.inputs.size()) != inputs.size()) {
    throw CheckError{stage, "request has " + std::to_string(request.inputs.size()) +
                                " inputs, signature " + request.signature_name +
                                " expects " + std::to_string(inputs.size())};
  }
  std::vector<std::pair<std::string, tensorflow::Tensor>> feeds;
  for (const auto& [alias, tensor] : request.inputs) {
    auto info = inputs.find(alias);
    if (info == inputs.end()) {
      throw CheckError{stage, "input " + alias + " is not in signature " +
                                  request.signature_name};
    }
    if (tensor.dtype() != info->second.dtype()) {
      throw CheckError{stage, "input " + alias + " has dtype " +
                                  tensorflow::DataTypeString(tensor.dtype()) + ", expected " +
                                  tensorflow::DataTypeString(info->second.dtype())};
    }
    feeds.emplace_back(info->second.name(), tensor);
  }
  std::vector<std::string> fetches;
  const auto& outputs = signature->second.outputs();
  if (request.output_filter.empty()) {
    for (const auto& item : outputs) fetches.push_back(item.second.name());
  }
  for (const auto& alias : request.output_filter) {
    auto info = outputs.find(alias);
    if (info == outputs.end()) {
      throw CheckError{stage, "output_filter names " + alias + ", not an output of " +
                                  request.signature_name};
    }
    fetches.push_back(info->second.name());
  }
  std::vector<tensorflow::Tensor> results;
  tensorflow::RunOptions run_options;
  if (executed_ops != nullptr) run_options.set_trace_level(tensorflow::RunOptions::FULL_TRACE);
  tensorflow::RunMetadata metadata;
  tensorflow::Status status = bundle.session->Run(run_options, feeds, fetches,
                                                  {}, &results, &metadata);
  if (!status.ok()) throw CheckError{stage, std::string(status.message())};
  if (executed_ops != nullptr) CountExecutedOps(metadata, executed_ops);
  return results;
}

// Reads a little-endian uint32; false at the end of `file` (gcount says how many bytes came).
bool ReadUint32(std::istream& file, uint32_t* value) {
  unsigned char bytes[4];
  if (!file.read(reinterpret_cast<char*>(bytes), 4)) return false;
  *value = bytes[0] | bytes[1] << 8 | bytes[2] << 16 | static_cast<uint32_t>(bytes[3]) << 24;
  return true;
}

// Reads a uint32 byte length, then that many bytes; false at the end of `file`.
bool ReadString(std::istream& file, std::string* text) {
  uint32_t size;
  if (!ReadUint32(file, &size)) return false;
  text->assign(size, '\0');
  return !size || static_cast<bool>(file.read(text->data(), size));
}

std::vector<std::string> ReadTexts(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw CheckError{"input", "cannot open texts file " + path};
  std::vector<std::string> texts;
  std::string text;
  while (ReadString(file, &text)) texts.push_back(std::move(text));
  if (file.gcount() != 0) throw CheckError{"input", "texts file " + path + " is truncated"};
  return texts;
}

// The warmup requests file; each input TensorProto becomes a Tensor, as TF Serving's
// Predict makes it.
std::vector<PredictRequest> ReadWarmupRequests(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw CheckError{"input", "cannot open warmup requests " + path};
  const CheckError truncated{"input", "warmup requests " + path + " is truncated"};
  std::vector<PredictRequest> requests;
  PredictRequest request;
  uint32_t count;
  while (ReadString(file, &request.signature_name)) {
    if (!ReadUint32(file, &count)) throw truncated;
    for (uint32_t i = 0; i < count; ++i) {
      std::string name, bytes;
      if (!ReadString(file, &name) || !ReadString(file, &bytes)) throw truncated;
      tensorflow::TensorProto proto;
      tensorflow::Tensor tensor;
      if (!proto.ParseFromString(bytes) || !tensor.FromProto(proto)) {
        throw CheckError{"warmup", "warmup record " + std::to_string(requests.size() + 1) +
                                       ": input " + name + " is not a valid tensor"};
      }
      request.inputs.emplace_back(name, tensor);
    }
    if (!ReadUint32(file, &count)) throw truncated;
    request.output_filter.resize(count);
    for (auto& name : request.output_filter) {
      if (!ReadString(file, &name)) throw truncated;
    }
    requests.push_back(std::move(request));
    request = PredictRequest();
  }
  if (file.gcount() != 0) throw truncated;
  return requests;
}

std::vector<std::vector<uint32_t>> ReadLoadPlan(const std::string& path, size_t text_count) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw CheckError{"input", "cannot open load plan " + path};
  std::vector<std::vector<uint32_t>> plan;
  uint32_t count;
  while (ReadUint32(file, &count)) {
    std::vector<uint32_t> request(count);
    for (auto& index : request) {
      if (!ReadUint32(file, &index) || index >= text_count) {
        throw CheckError{"input", "load plan " + path + " is truncated or names a missing text"};
      }
    }
    plan.push_back(std::move(request));
  }
  return plan;
}

tensorflow::Tensor TextBatch(const std::vector<std::string>& texts,
                             const std::vector<uint32_t>& indices) {
  tensorflow::Tensor batch(tensorflow::DT_STRING,
                           tensorflow::TensorShape({static_cast<int64_t>(indices.size())}));
  auto flat = batch.flat<tensorflow::tstring>();
  for (size_t i = 0; i < indices.size(); ++i) flat(i) = texts[indices[i]];
  return batch;
}

struct LoadResult {
  double seconds = 0;
  double max_difference = 0;  // from the one-at-a-time answer, over every value
  double min_norm = INFINITY, max_norm = 0;
  int64_t non_finite = 0;  // NaN or infinite values answered under load
};

// The concurrency stage (step 5). Every answer must have its reference's shape.
LoadResult RunLoad(const tensorflow::SavedModelBundle& bundle, const std::string& signature,
                   const std::string& input, const std::string& output,
                   const std::vector<std::string>& texts,
                   const std::vector<std::vector<uint32_t>>& plan, int threads) {
  std::vector<PredictRequest> requests;
  std::vector<tensorflow::Tensor> references;
  for (const auto& indices : plan) {
    requests.push_back({signature, {{input, TextBatch(texts, indices)}}, {output}});
    references.push_back(Predict(bundle, requests.back(), "concurrency")[0]);
  }
  std::vector<LoadResult> results(threads);
  std::vector<std::string> errors(threads);
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&, t] {
      LoadResult& result = results[t];
      try {
        for (size_t n = 0; n < requests.size(); ++n) {
          size_t r = (n + t * requests.size() / threads) % requests.size();  // staggered starts
          tensorflow::Tensor answer = Predict(bundle, requests[r], "concurrency")[0];
          const tensorflow::Tensor& reference = references[r];
          if (answer.shape() != reference.shape() || answer.dims() != 2) {
            throw CheckError{"concurrency", "request " + std::to_string(r) + " answered shape " +
                                         answer.shape().DebugString() + " under load, " +
                                         reference.shape().DebugString() + " alone"};
          }
          auto got = answer.matrix<float>();
          auto want = reference.matrix<float>();
          for (int64_t i = 0; i < answer.dim_size(0); ++i) {
            double squares = 0;
            for (int64_t j = 0; j < answer.dim_size(1); ++j) {
              if (!std::isfinite(got(i, j))) {
                ++result.non_finite;
                continue;
              }
              squares += static_cast<double>(got(i, j)) * got(i, j);
              double difference = std::fabs(static_cast<double>(got(i, j)) - want(i, j));
              if (std::isnan(difference)) difference = INFINITY;  // the reference was not finite
              result.max_difference = std::max(result.max_difference, difference);
            }
            const double norm = std::sqrt(squares);
            result.min_norm = std::min(result.min_norm, norm);
            result.max_norm = std::max(result.max_norm, norm);
          }
        }
      } catch (const CheckError& error) {
        errors[t] = error.message;
      }
    });
  }
  for (auto& client : clients) client.join();
  for (int t = 0; t < threads; ++t) {
    if (!errors[t].empty()) {
      throw CheckError{"concurrency", "client " + std::to_string(t) + ": " + errors[t]};
    }
  }
  LoadResult total;
  total.seconds = Seconds(start);
  for (const auto& result : results) {
    total.max_difference = std::max(total.max_difference, result.max_difference);
    total.non_finite += result.non_finite;
    total.min_norm = std::min(total.min_norm, result.min_norm);
    total.max_norm = std::max(total.max_norm, result.max_norm);
  }
  return total;
}

struct Options {
  std::string model_dir, texts_path, embeddings_path, warmup_path, warmup_error, load_plan_path;
  std::string signature_name = "serving_default";
  std::string output_name;  // empty: the signature's only output
  std::vector<std::string> op_libraries;
  int batch_size = 1;
  int load_threads = 8;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--op-library") options.op_libraries.push_back(value());
    else if (flag == "--texts") options.texts_path = value();
    else if (flag == "--embeddings") options.embeddings_path = value();
    else if (flag == "--signature") options.signature_name = value();
    else if (flag == "--output") options.output_name = value();
    else if (flag == "--batch-size") options.batch_size = std::stoi(value());
    else if (flag == "--load-plan") options.load_plan_path = value();
    else if (flag == "--load-threads") options.load_threads = std::stoi(value());
    else if (flag == "--warmup-requests") options.warmup_path = value();
    else if (flag == "--warmup-error") options.warmup_error = value();
    else if (!flag.empty() && flag[0] != '-' && options.model_dir.empty()) options.model_dir = flag;
    else throw std::invalid_argument("unknown argument " + flag);
  }
  if (options.model_dir.empty() || options.texts_path.empty() ||
      options.embeddings_path.empty() || options.batch_size < 1 || options.load_threads < 1) {
    throw std::invalid_argument(
        "usage: serving_check MODEL_DIR --texts FILE --embeddings FILE "
        "[--op-library SO]... [--signature NAME] [--output NAME] [--batch-size N] "
        "[--warmup-requests FILE | --warmup-error TEXT] [--load-plan FILE] [--load-threads N]");
  }
  return options;
}

std::string Check(const Options& options) {
  tensorflow::Env* env = tensorflow::Env::Default();
  for (const auto& library : options.op_libraries) {
    void* handle = nullptr;
    tensorflow::Status status = env->LoadDynamicLibrary(library.c_str(), &handle);
    if (!status.ok()) {
      throw CheckError{"op_libraries", library + ": " + std::string(status.message())};
    }
  }

  auto start = std::chrono::steady_clock::now();
  tensorflow::SavedModelBundle bundle;
  tensorflow::Status status =
      tensorflow::LoadSavedModel(tensorflow::SessionOptions(), tensorflow::RunOptions(),
                                 options.model_dir, {kServeTag}, &bundle);
  if (!status.ok()) throw CheckError{"load", std::string(status.message())};
  double load_seconds = Seconds(start);

  const auto& signatures = bundle.meta_graph_def.signature_def();
  std::map<std::string, const tensorflow::SignatureDef*> sorted;
  for (const auto& item : signatures) {
    // TF Serving does not serve internal entries such as __saved_model_init_op.
    if (item.first.rfind("__", 0) != 0) sorted[item.first] = &item.second;
  }
  std::string signatures_json = "{";
  for (const auto& [name, signature] : sorted) {
    signatures_json += (signatures_json.size() > 1 ? ", " : "") + Json(name) +
                       ": {\"method_name\": " + Json(signature->method_name()) +
                       ", \"inputs\": " + TensorMapJson(signature->inputs()) +
                       ", \"outputs\": " + TensorMapJson(signature->outputs()) + "}";
  }
  signatures_json += "}";

  int warmup_records = 0;
  double warmup_seconds = 0;
  if (!options.warmup_error.empty()) throw CheckError{"warmup", options.warmup_error};
  if (!options.warmup_path.empty()) {
    start = std::chrono::steady_clock::now();
    for (const auto& request : ReadWarmupRequests(options.warmup_path)) {
      ++warmup_records;
      Predict(bundle, request, "warmup");
    }
    warmup_seconds = Seconds(start);
  }

  auto signature = signatures.find(options.signature_name);
  if (signature == signatures.end()) {
    throw CheckError{"signature", "no signature " + options.signature_name};
  }
  const auto& inputs = signature->second.inputs();
  if (inputs.size() != 1 || inputs.begin()->second.dtype() != tensorflow::DT_STRING) {
    throw CheckError{"signature", "signature " + options.signature_name +
                                      " must take exactly one string input"};
  }
  const auto& outputs = signature->second.outputs();
  std::string output_name = options.output_name;
  if (output_name.empty() && outputs.size() == 1) output_name = outputs.begin()->first;
  auto output = outputs.find(output_name);
  if (output == outputs.end() || output->second.dtype() != tensorflow::DT_FLOAT) {
    throw CheckError{"signature", "signature " + options.signature_name +
                                      " has no float32 output " + Json(output_name)};
  }

  const std::vector<std::string> texts = ReadTexts(options.texts_path);
  std::ofstream embeddings(options.embeddings_path, std::ios::binary);
  if (!embeddings) throw CheckError{"input", "cannot write " + options.embeddings_path};
  std::vector<double> latencies;
  int64_t rows = 0, columns = -1;
  for (size_t first = 0; first < texts.size(); first += options.batch_size) {
    size_t count = std::min<size_t>(options.batch_size, texts.size() - first);
    std::vector<uint32_t> indices(count);
    for (size_t i = 0; i < count; ++i) indices[i] = first + i;
    PredictRequest request{options.signature_name,
                           {{inputs.begin()->first, TextBatch(texts, indices)}}, {output_name}};
    start = std::chrono::steady_clock::now();
    std::vector<tensorflow::Tensor> result = Predict(bundle, request, "run");
    latencies.push_back(Seconds(start));
    const tensorflow::Tensor& values = result[0];
    if (values.dims() != 2 || values.dim_size(0) != (int64_t)count ||
        (columns >= 0 && values.dim_size(1) != columns)) {
      throw CheckError{"run", "output " + output_name + " has shape " +
                                  values.shape().DebugString() + " for a batch of " +
                                  std::to_string(count)};
    }
    columns = values.dim_size(1);
    rows += count;
    embeddings.write(reinterpret_cast<const char*>(values.flat<float>().data()),
                     values.NumElements() * sizeof(float));
  }
  embeddings.close();
  if (!embeddings) throw CheckError{"run", "could not write " + options.embeddings_path};
  // The first batch once more, traced: which kernels (fused or not) the optimised graph runs.
  std::map<std::string, int> executed_ops;
  std::vector<uint32_t> first_batch(std::min<size_t>(options.batch_size, texts.size()));
  for (size_t i = 0; i < first_batch.size(); ++i) first_batch[i] = i;
  Predict(bundle, PredictRequest{options.signature_name,
                                 {{inputs.begin()->first, TextBatch(texts, first_batch)}},
                                 {output_name}},
          "trace", &executed_ops);
  std::string executed_ops_json = "{";
  for (const auto& [op, count] : executed_ops) {
    executed_ops_json += (executed_ops_json.size() > 1 ? ", " : "") + Json(op) + ": " +
                         std::to_string(count);
  }
  executed_ops_json += "}";

  std::string load_json = "null";
  if (!options.load_plan_path.empty()) {
    const auto plan = ReadLoadPlan(options.load_plan_path, texts.size());
    LoadResult load = RunLoad(bundle, options.signature_name, inputs.begin()->first, output_name,
                              texts, plan, options.load_threads);
    load_json = "{\"threads\": " + std::to_string(options.load_threads) +
                ", \"requests_per_thread\": " + std::to_string(plan.size()) +
                ", \"seconds\": " + Json(load.seconds) +
                ", \"max_difference\": " + Json(load.max_difference) +
                ", \"min_norm\": " + Json(load.min_norm) +
                ", \"max_norm\": " + Json(load.max_norm) +
                ", \"non_finite_values\": " + std::to_string(load.non_finite) + "}";
  }

  return std::string("{\"ok\": true") +
         ", \"model_dir\": " + Json(options.model_dir) +
         ", \"op_libraries\": " + JsonList(options.op_libraries, [](const std::string& s) { return Json(s); }) +
         ", \"load_seconds\": " + Json(load_seconds) +
         ", \"signatures\": " + signatures_json +
         ", \"warmup_records\": " + std::to_string(warmup_records) +
         ", \"warmup_seconds\": " + Json(warmup_seconds) +
         ", \"signature\": " + Json(options.signature_name) +
         ", \"output\": " + Json(output_name) +
         ", \"rows\": " + std::to_string(rows) +
         ", \"columns\": " + std::to_string(std::max<int64_t>(columns, 0)) +
         ", \"batch_size\": " + std::to_string(options.batch_size) +
         ", \"latencies_seconds\": " + JsonList(latencies, [](double s) { return Json(s); }) +
         ", \"executed_ops\": " + executed_ops_json +
         ", \"load\": " + load_json + "}";
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = ParseOptions(argc, argv);
  } catch (const std::exception& error) {
    std::cout << "{\"ok\": false, \"stage\": \"usage\", \"error\": " << Json(error.what())
              << "}" << std::endl;
    return 2;
  }
  try {
    std::cout << Check(options) << std::endl;
    return 0;
  } catch (const CheckError& error) {
    std::cout << "{\"ok\": false, \"stage\": " << Json(error.stage)
              << ", \"error\": " << Json(error.message) << "}" << std::endl;
    return 1;
  }
}
