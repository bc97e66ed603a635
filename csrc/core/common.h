// Error checking and small shared types for the tensor core.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace minisinga {

using Shape = std::vector<int64_t>;

// Raised for bad values (shapes, sizes, ranges); surfaces in Python as ValueError.
struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
// Raised for bad dtypes or devices; surfaces in Python as TypeError.
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
// Raised when the runtime itself fails (allocation, CUDA errors); RuntimeError in Python.
struct RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string ShapeStr(const Shape& s);
int64_t Numel(const Shape& s);
// a + b and a * b of sizes given by users (padding, dilation, split sizes): ValueError
// "<op>: <what> ... overflows a 64-bit size" where a wrapped value would pass later checks.
int64_t AddSize(int64_t a, int64_t b, const char* op, const char* what);
int64_t MulSize(int64_t a, int64_t b, const char* op, const char* what);
// The integer >= 0 in environment variable `var` (`fallback` when unset or empty); anything
// else raises ValueError "<var> must be <expected>, got '<value>'".
int64_t EnvCount(const char* var, int64_t fallback, const char* expected);

}  // namespace minisinga

#define MS_THROW_(Kind, msg)        \
  do {                              \
    std::ostringstream ms_os_;      \
    ms_os_ << msg;                  \
    throw ::minisinga::Kind(ms_os_.str()); \
  } while (0)

// MS_CHECK(cond, "op: what was wrong " << detail) throws ValueError with the message.
#define MS_CHECK(cond, msg) \
  do {                      \
    if (!(cond)) MS_THROW_(ValueError, msg); \
  } while (0)
#define MS_CHECK_TYPE(cond, msg) \
  do {                           \
    if (!(cond)) MS_THROW_(TypeError, msg); \
  } while (0)
#define MS_FAIL(msg) MS_THROW_(RuntimeError, msg)
