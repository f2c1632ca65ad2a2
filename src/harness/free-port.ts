/**
 * One way to pick a loopback TCP port for a server, broker or fake device that a test, bench or
 * scenario starts itself, often in a child process that must come back on the same port.
 */
import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it for a listener bound
 * to loopback only, which is then closed so the caller's process can take the port.
 *
 * Another process may take the port between the close and the caller's bind; callers that
 * cannot afford that retry (see `startMosquitto`). Binding 127.0.0.1 and not the wildcard
 * address keeps a test from ever opening a port on the machine's network interfaces.
 *
 * @returns the port number (1–65535); rejects if the listener fails or reports no address.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('the loopback listener reported no port'));
      });
    });
  });
}
