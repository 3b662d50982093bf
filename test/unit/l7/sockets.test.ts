/** TransparentSockets.listenerFd: the descriptor of this process's listener on a port. */
import net from 'node:net';
import { fstatSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { TransparentSockets } from '../../../pkg/datapath/linux/l7sock.ts';

describe('TransparentSockets.listenerFd', () => {
  test('finds the listening socket of a port, and nothing for a port nobody listens on', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as net.AddressInfo).port;
      const fd = TransparentSockets.listenerFd(port);
      expect(fd).toBeTypeOf('number');
      expect(fstatSync(fd!).isSocket()).toBe(true);
      // The server's own handle has that descriptor.
      expect((srv as unknown as { _handle: { fd: number } })._handle.fd).toBe(fd);
      srv.close();
      await new Promise((r) => setTimeout(r, 10));
      expect(TransparentSockets.listenerFd(port)).toBeUndefined();
    } finally {
      srv.close();
    }
  });

  test('makeTransparent without the helper running fails clearly', async () => {
    const t = new TransparentSockets('/nonexistent/palisade-l7sock');
    await expect(t.start()).rejects.toThrow(/helper \/nonexistent\/palisade-l7sock not found/);
    await expect(t.makeTransparent(3)).rejects.toThrow(/not running/);
  });
});
