// The ICU regular-expression C API (uregex.h) of the ICU that Foundation itself uses:
// swift-foundation-icu, shipped with the toolchain as lib_FoundationICU (dynamic) and
// lib_FoundationICU.a (static, for --static-swift-stdlib), with every symbol prefixed `swift_`.
// NSRegularExpression runs on this same library, so a pattern matches here exactly as it does
// there (FilterRegexBulkTests compares the two). The toolchain ships no header for it: the few
// declarations exocheck needs are copied here from ICU's documented API, with ICU's C types
// spelled out (UChar: 16-bit code unit; UBool: int8_t in C; UErrorCode: an int-sized enum,
// U_ZERO_ERROR 0, failures > 0, warnings < 0). Only ExchangeChecks/ICUMatcher.swift uses them.
#ifndef EXOCHECK_CICUREGEX_SHIM_H
#define EXOCHECK_CICUREGEX_SHIM_H

#include <stdint.h>

typedef struct URegularExpression URegularExpression;

/// ICU's URegexMatchCallback: called every few thousand steps of a match; 0 stops it.
typedef int8_t (*exo_uregex_match_callback)(const void *context, int32_t steps);
/// ICU's URegexFindProgressCallback: called as a find moves its start; 0 stops it.
typedef int8_t (*exo_uregex_find_progress_callback)(const void *context, int64_t matchIndex);

/// UREGEX_CASE_INSENSITIVE (the only flag exocheck's filters use).
#define EXO_UREGEX_CASE_INSENSITIVE 2

URegularExpression *swift_uregex_open(const uint16_t *pattern, int32_t patternLength, uint32_t flags,
                                      void *parseError, int32_t *status);
void swift_uregex_close(URegularExpression *regexp);
void swift_uregex_setText(URegularExpression *regexp, const uint16_t *text, int32_t textLength, int32_t *status);
int8_t swift_uregex_find(URegularExpression *regexp, int32_t startIndex, int32_t *status);
void swift_uregex_setMatchCallback(URegularExpression *regexp, exo_uregex_match_callback callback,
                                   const void *context, int32_t *status);
void swift_uregex_setFindProgressCallback(URegularExpression *regexp, exo_uregex_find_progress_callback callback,
                                          const void *context, int32_t *status);

#endif
