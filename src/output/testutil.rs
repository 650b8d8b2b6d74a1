//! Shared test helpers for the output module.

/// A tiny xorshift generator so tests need no extra crates.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What `seq 1 n` prints.
pub fn seq_output(n: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(8 * n as usize);
    for i in 1..=n {
        data.extend_from_slice(i.to_string().as_bytes());
        data.push(b'\n');
    }
    data
}
