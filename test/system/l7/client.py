"""HTTP/1.1 client for the L7 system tests, run inside a pod's network namespace.

usage: client.py IP PORT CASE [ARGS...]; prints one JSON object.
Raw sockets on purpose: a test must see exactly which connection a response came on.
"""
import json
import socket
import sys
import time


def read_response(s):
    """Reads one response (Content-Length or chunked bodies); returns (status, headers, body) or None on EOF."""
    buf = b''
    while b'\r\n\r\n' not in buf:
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    head, rest = buf.split(b'\r\n\r\n', 1)
    lines = head.decode('latin-1').split('\r\n')
    status = int(lines[0].split(' ')[1])
    headers = {}
    for l in lines[1:]:
        k, v = l.split(':', 1)
        headers[k.strip().lower()] = v.strip()
    if 'content-length' in headers:
        n = int(headers['content-length'])
        while len(rest) < n:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        return status, headers, rest[:n]
    if headers.get('transfer-encoding', '').lower() == 'chunked':
        while not rest.endswith(b'0\r\n\r\n'):
            d = s.recv(65536)
            if not d:
                break
            rest += d
    return status, headers, rest


def request(s, method, path, headers=None, body=b''):
    h = {'Host': 'server', 'Content-Length': str(len(body))}
    h.update(headers or {})
    s.sendall(f'{method} {path} HTTP/1.1\r\n'.encode() + ''.join(f'{k}: {v}\r\n' for k, v in h.items()).encode() + b'\r\n')
    if body:
        s.sendall(body)
    return read_response(s)


def main():
    ip, port, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.create_connection((ip, port), timeout=10)
    out = {}
    if case == 'host':
        out['match'] = request(s, 'GET', '/host-only', {'Host': 'api.example.com'})[0]
        out['other'] = request(s, 'GET', '/host-only', {'Host': 'other.example.com'})[0]
    elif case == 'keepalive':
        # First request, then wait (same connection) until a policy update lets it through.
        first = request(s, 'GET', '/admin')
        out['first'] = first[0]
        out['firstBody'] = first[2].decode('latin-1')
        print(json.dumps({'ready': True}), flush=True)
        sys.stdin.readline()  # the test applied the update
        deadline = time.time() + float(sys.argv[4])
        statuses = []
        while time.time() < deadline:
            r = request(s, 'GET', '/admin')
            if r is None:
                statuses.append('closed')
                break
            statuses.append(r[0])
            if r[0] == 200:
                break
            time.sleep(0.2)
        out['then'] = statuses
    elif case == 'hold':
        # A request, then (after the test restarted the agent) another on the same connection.
        out['first'] = request(s, 'GET', '/public')[0]
        print(json.dumps({'ready': True}), flush=True)
        sys.stdin.readline()
        try:
            r = request(s, 'GET', '/public')
            out['after'] = r[0] if r else 'closed'
        except OSError as e:
            out['after'] = 'closed'
            out['error'] = str(e)
    elif case == 'upload':
        size = int(sys.argv[4])
        r = request(s, 'POST', '/upload', {'x-token': 's3cret'}, b'x' * size)
        out['status'] = r[0] if r else 'closed'
    elif case == 'malformed':
        s.sendall(b'NOT HTTP AT ALL\r\n\r\n')
        r = read_response(s)
        out['status'] = r[0] if r else 'closed'
        try:
            out['closed'] = s.recv(1) == b''
        except OSError:
            out['closed'] = True
    print(json.dumps(out), flush=True)


main()
