#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic, and Swift cannot call variadic C
// functions. One typed wrapper per argument type, as swift-corelibs-foundation does in
// CFURLSessionInterface.c. The option passed must take the argument type the name says.

static inline CURLcode ferry_curl_global_init(void) {
    return curl_global_init(CURL_GLOBAL_ALL);
}

/// The libcurl version and its backends, e.g. "libcurl/7.88.1 OpenSSL/3.0.15 zlib/1.2.13".
static inline const char *ferry_curl_version(void) {
    return curl_version();
}

static inline CURLcode ferry_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode ferry_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/// For options that take a pointer libcurl does not copy (CURLOPT_POSTFIELDS,
/// CURLOPT_WRITEDATA, CURLOPT_ERRORBUFFER): it must outlive the transfer.
static inline CURLcode ferry_curl_setopt_ptr(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}

/// For string options; libcurl copies the string (except CURLOPT_POSTFIELDS).
static inline CURLcode ferry_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

/// libcurl does not copy the list: free it only after the transfer.
static inline CURLcode ferry_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *list) {
    return curl_easy_setopt(handle, option, list);
}

/// The shape of CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION callbacks: return the
/// number of bytes taken (size * nitems); anything else aborts the transfer.
typedef size_t (*ferry_curl_data_function)(char *data, size_t size, size_t nitems, void *userdata);

static inline CURLcode ferry_curl_setopt_write_function(CURL *handle, ferry_curl_data_function function) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, function);
}

static inline CURLcode ferry_curl_setopt_header_function(CURL *handle, ferry_curl_data_function function) {
    return curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, function);
}

/// CURLOPT_READFUNCTION: a request body supplied as it is sent. With no seek function set,
/// libcurl cannot rewind it, so it never re-sends the body by itself.
static inline CURLcode ferry_curl_setopt_read_function(CURL *handle, ferry_curl_data_function function) {
    return curl_easy_setopt(handle, CURLOPT_READFUNCTION, function);
}

static inline CURLcode ferry_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode ferry_curl_getinfo_double(CURL *handle, CURLINFO info, double *value) {
    return curl_easy_getinfo(handle, info, value);
}

/// For the *_T infos: times in microseconds, sizes in bytes.
static inline CURLcode ferry_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

/// The string stays owned by the handle and valid until the next transfer or cleanup.
static inline CURLcode ferry_curl_getinfo_string(CURL *handle, CURLINFO info, const char **value) {
    return curl_easy_getinfo(handle, info, value);
}
