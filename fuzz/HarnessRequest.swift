// libFuzzer target "request": the check request decoder (`CheckRequestDecoder.decode`), which
// reads every record of the requests topic, then the argument parser the worker runs on a
// request that decoded, and the traceparent check on the raw bytes.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    _ = CheckRequestDecoder.isTraceparent(bytes)
    for maxBytes in [65_536, 64] {
        switch CheckRequestDecoder.decode(bytes, maxBytes: maxBytes, headerId: size % 2 == 0 ? "hdr-id" : nil) {
        case .failure(let rejection):
            _ = rejection.reason.utf8.count
        case .success(let request):
            _ = request.encoded()
            // What the worker builds from a request (CheckSpec), as it builds it.
            if let spec = attempt({ try CheckSpec(mode: request.mode, options: CentreonArguments(request.arguments)) }) {
                _ = spec.configuration.selects(spec.mode.counters[0])
                _ = spec.requestOptions.count
            }
        }
    }
    return 0
}
