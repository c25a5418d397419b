"""Privacy mode through the real daemon: keyed hashes on disk, same answers.

With privacy = yes the LMDB file must hold no client address, sender or
recipient in any form a reader could grep, the secret key file must be
created private on first start and reused, greylisting must work exactly
as without privacy (across a restart too), and a key file others can read
must stop the daemon from starting rather than be used.
"""

import os
import stat
import time
import unittest

import harness
from harness import make_request


class PrivacyTest(harness.GreyholdTestCase):

    def test_hashes_on_disk_and_answers_unchanged(self):
        d = self.daemon(["--delay", "1", "-o", "privacy=yes"])
        req = make_request(client_address="198.51.100.77",
                           sender="private.person@example.org",
                           recipient="secret.recipient@example.net")
        self.assertDefer(d.ask(req))
        keyfile = os.path.join(d.dbdir, "privacy.key")
        st = os.stat(keyfile)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_size, 32)
        time.sleep(2.2)
        self.assertDunno(d.ask(req))
        d.stop()
        with open(os.path.join(d.dbdir, "data.mdb"), "rb") as f:
            data = f.read()
        for needle in (b"private.person", b"secret.recipient",
                       b"198.51.100", b"example.org", b"example.net"):
            self.assertNotIn(needle, data)
        # The same key after a restart: the passed triplet is still known.
        with open(keyfile, "rb") as f:
            key = f.read()
        d.start()
        self.assertDunno(d.ask(req))
        with open(keyfile, "rb") as f:
            self.assertEqual(f.read(), key)
        self.assertIn("reason=triplet found", d.log())

    def test_key_file_readable_by_others_stops_start(self):
        d = self.daemon(["-o", "privacy=yes"])
        d.stop()
        os.chmod(os.path.join(d.dbdir, "privacy.key"), 0o644)
        with self.assertRaises(harness.DaemonError):
            d.start()
        self.assertIn("chmod 600", d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
