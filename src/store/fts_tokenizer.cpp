#include "store/fts_tokenizer.h"

#include "store/database.h"

#include <limits>
#include <sstream>

namespace ds {

namespace {

struct SinkContext {
  void (*sink)(void*, const char*, int);
  void* ctx;
};

int OnToken(void* p, int tflags, const char* token, int n, int /*start*/, int /*end*/) {
  if (tflags & FTS5_TOKEN_COLOCATED) return SQLITE_OK;
  auto* sc = static_cast<SinkContext*>(p);
  sc->sink(sc->ctx, token, n);
  return SQLITE_OK;
}

}  // namespace

Result<std::unique_ptr<FtsTokenizer>> FtsTokenizer::Open(const std::string& spec) {
  std::istringstream words(spec);
  std::string name;
  words >> name;
  if (name.empty()) return Status::InvalidArgument("empty tokenizer spec");
  std::unique_ptr<FtsTokenizer> t(new FtsTokenizer());
  for (std::string arg; words >> arg;) t->args_.push_back(arg);
  ConfigureSqliteOnce();
  if (sqlite3_open_v2(":memory:", &t->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    return Status::Internal("cannot open an in-memory SQLite connection for the tokenizer");
  }
  fts5_api* api = nullptr;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(t->db_, "SELECT fts5(?1)", -1, &stmt, nullptr) != SQLITE_OK) {
    return Status::Internal(std::string("FTS5 is not available: ") + sqlite3_errmsg(t->db_));
  }
  sqlite3_bind_pointer(stmt, 1, &api, "fts5_api_ptr", nullptr);
  sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (api == nullptr) return Status::Internal("FTS5 is not available in this SQLite");
  if (api->xFindTokenizer(api, name.c_str(), &t->module_ctx_, &t->module_) != SQLITE_OK) {
    return Status::InvalidArgument("unknown FTS5 tokenizer: " + name);
  }
  // Create one instance now so a bad argument fails here, not at first use.
  DS_ASSIGN_OR_RETURN(::Fts5Tokenizer * first, t->Acquire());
  t->Release(first);
  return t;
}

FtsTokenizer::~FtsTokenizer() {
  for (::Fts5Tokenizer* instance : idle_) module_.xDelete(instance);
  if (db_ != nullptr) sqlite3_close(db_);
}

Result<::Fts5Tokenizer*> FtsTokenizer::Acquire() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      ::Fts5Tokenizer* instance = idle_.back();
      idle_.pop_back();
      return instance;
    }
  }
  std::vector<const char*> argv;
  for (const auto& a : args_) argv.push_back(a.c_str());
  ::Fts5Tokenizer* instance = nullptr;
  if (module_.xCreate(module_ctx_, argv.data(), static_cast<int>(argv.size()), &instance) !=
      SQLITE_OK) {
    return Status::InvalidArgument("bad FTS5 tokenizer arguments");
  }
  return instance;
}

void FtsTokenizer::Release(::Fts5Tokenizer* instance) const {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.push_back(instance);
}

Status FtsTokenizer::TokenizeRaw(std::string_view text, Mode mode, Sink sink, void* ctx) const {
  if (text.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Status::InvalidArgument("text too long to tokenize");
  }
  DS_ASSIGN_OR_RETURN(::Fts5Tokenizer * instance, Acquire());
  SinkContext sc{sink, ctx};
  int flags = mode == Mode::kQuery ? FTS5_TOKENIZE_QUERY : FTS5_TOKENIZE_DOCUMENT;
  int rc =
      module_.xTokenize(instance, &sc, flags, text.data(), static_cast<int>(text.size()), OnToken);
  Release(instance);
  if (rc != SQLITE_OK) return Status::Internal("FTS5 tokenizer failed: " + std::to_string(rc));
  return Status::Ok();
}

}  // namespace ds
