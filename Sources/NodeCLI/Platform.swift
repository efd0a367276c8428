#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes straight to file descriptor 2, so no shared C `FILE*` global is touched.
func fwriteStandardError(_ buffer: UnsafeBufferPointer<UInt8>) -> Int {
    write(2, buffer.baseAddress, buffer.count)
}

/// `print` buffers stdout; a parent process reading our lines needs them now.
func flushStandardOutput() { fflush(nil) }
