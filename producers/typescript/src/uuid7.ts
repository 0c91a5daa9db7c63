/**
 * UUIDv7 (RFC 9562) event ids: time-ordered, so ids sort by creation and a store's
 * index on them stays append-mostly. Within one millisecond a 12-bit counter (seeded
 * randomly) keeps ids of this process strictly increasing; when it runs out, the
 * timestamp is advanced by one millisecond rather than reordering.
 */
let lastMs = -1;
let counter = 0;

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** A new UUIDv7 string, e.g. `01936a3e-7c1f-7a3b-8f2e-4d5c6b7a8e9f`. */
export function uuidv7(now: number = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    counter = randomBits12() & 0x7ff; // leave room to count up
  } else {
    counter += 1;
    if (counter > 0xfff) {
      lastMs += 1;
      counter = 0;
    }
  }
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  const ms = lastMs;
  // 48-bit big-endian milliseconds; `/ 2 ** n` because bit operators are 32-bit.
  bytes[0] = Math.floor(ms / 2 ** 40) & 0xff;
  bytes[1] = Math.floor(ms / 2 ** 32) & 0xff;
  bytes[2] = Math.floor(ms / 2 ** 24) & 0xff;
  bytes[3] = Math.floor(ms / 2 ** 16) & 0xff;
  bytes[4] = Math.floor(ms / 2 ** 8) & 0xff;
  bytes[5] = ms & 0xff;
  bytes[6] = 0x70 | ((counter >> 8) & 0x0f);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  let out = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out += '-';
    out += HEX[bytes[i]!];
  }
  return out;
}

function randomBits12(): number {
  const one = new Uint16Array(1);
  crypto.getRandomValues(one);
  return one[0]! & 0xfff;
}
