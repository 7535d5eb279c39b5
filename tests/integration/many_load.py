#!/usr/bin/env python3
"""many_load.py — concurrent transactions to the many.test domains (d000.many.test ...) of
the test-bed (mkzones.sh), one recipient each, through mxguard (stdlib only).

  many_load.py IP PORT SOURCE SESSIONS MESSAGES TAG DOMAINS SEED [--together]

MESSAGES transactions to the first DOMAINS domains, in rounds of every domain once, each round
shuffled by a random.Random(SEED) (so concurrent sessions start on distinct domains), spread
over SESSIONS client sessions from SOURCE; --together: every session starts its first
transaction at the same moment (a barrier after EHLO). Prints "# refused: ..." lines (at most
ten), then "ACCEPTED LONGEST_MS" (transactions answered 250; the longest one's duration)."""
import random
import smtplib
import sys
import threading
import time


def main(argv):
    ip, port, src = argv[1], int(argv[2]), argv[3]
    sessions, messages, tag = int(argv[4]), int(argv[5]), argv[6]
    doms = ["d%03d.many.test" % n for n in range(int(argv[7]))]
    rng = random.Random(int(argv[8]))
    together = "--together" in argv[9:]
    rcpts = []
    while len(rcpts) < messages:
        rcpts += rng.sample(doms, len(doms))
    rcpts = rcpts[:messages]
    ok = [0] * sessions
    longest = [0.0]
    bad = []
    go = threading.Barrier(sessions)

    def run(k):
        try:
            s = smtplib.SMTP(ip, port, source_address=(src, 0), timeout=60)
            s.ehlo("client.test")
            if together:
                go.wait()
            for i, d in enumerate(rcpts[k::sessions]):
                to = "u%d-%s@%s" % (k, i, d)
                msg = "From: a@client.test\r\nTo: %s\r\nSubject: %s %d %d\r\n\r\nbody\r\n" % (
                    to, tag, k, i)
                t0 = time.monotonic()
                try:
                    s.sendmail("a@client.test", [to], msg)
                    ok[k] += 1
                except smtplib.SMTPException as e:
                    bad.append("%s: %r" % (to, e))
                longest[0] = max(longest[0], time.monotonic() - t0)
            s.quit()
        except Exception as e:  # a session that could not even start counts as refused
            bad.append("session %d: %r" % (k, e))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for b in bad[:10]:
        print("# refused: " + b)
    print(sum(ok), int(longest[0] * 1000))


if __name__ == "__main__":
    main(sys.argv)
