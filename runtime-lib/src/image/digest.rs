//! Content digests: every blob is checked against the digest that names it, as it is read.

use std::io::Read;

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::Digest as _;

/// A running hash of one of the algorithms the image spec registers.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// `None` for an algorithm hull cannot check: such a blob is refused, never trusted unread.
    pub(crate) fn new(algorithm: &DigestAlgorithm) -> Option<Hasher> {
        match algorithm {
            DigestAlgorithm::Sha256 => Some(Hasher::Sha256(sha2::Sha256::new())),
            DigestAlgorithm::Sha384 => Some(Hasher::Sha384(sha2::Sha384::new())),
            DigestAlgorithm::Sha512 => Some(Hasher::Sha512(sha2::Sha512::new())),
            _ => None,
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The lower-case hex digest, as an OCI digest's encoded part.
    pub(crate) fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A reader that hashes and counts what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R, hasher: Hasher) -> Self {
        HashingReader {
            inner,
            hasher,
            count: 0,
        }
    }

    /// Reads what is left (a tar's zero padding, a compressor's trailer) so that the digest
    /// covers the whole stream, then returns it and the byte count.
    pub(crate) fn finish(mut self) -> std::io::Result<(String, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((self.hasher.hex(), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Whether `digest` is one hull can verify and safe as a file name: the registered algorithms'
/// encoded part is lower-case hex of a fixed length, so it can never hold a `/` or be `..`.
pub(crate) fn checkable(digest: &Digest) -> bool {
    let Some(len) = digest.algorithm().digest_hexlen() else {
        return false;
    };
    let hex = digest.digest();
    hex.len() == len as usize && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
