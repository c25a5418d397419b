/*
 * privacy - keyed BLAKE2b (libsodium's crypto_generichash) over key parts.
 *
 * The key file holds PRIVACY_KEY_BYTES raw bytes.  It is created with
 * O_EXCL so two processes starting at once cannot write different keys;
 * the loser reads the winner's.
 */
#include "privacy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_SODIUM
#include <sodium.h>
#endif

bool
privacy_available(void)
{
#ifdef HAVE_SODIUM
	return true;
#else
	return false;
#endif
}

static int
read_key(struct privacy *out, const char *path, char *err, size_t errsz)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	ssize_t n;
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (st.st_mode & 077) != 0) {
		snprintf(err, errsz, "privacy key %s must be readable by its "
			 "owner only (chmod 600)", path);
		rc = -EPERM;
	} else if ((n = read(fd, out->key, sizeof(out->key))) !=
		   (ssize_t)sizeof(out->key)) {
		snprintf(err, errsz, "privacy key %s is not %d bytes: restore it "
			 "from a backup (a new key makes every stored triplet "
			 "unknown)", path, PRIVACY_KEY_BYTES);
		rc = -EBADMSG;
	}
	close(fd);
	return rc;
}

static int
create_key(const char *path, char *err, size_t errsz)
{
#ifdef HAVE_SODIUM
	uint8_t key[PRIVACY_KEY_BYTES];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = 0;

	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	if (sodium_init() < 0) {
		close(fd);
		unlink(path);
		snprintf(err, errsz, "libsodium failed to initialise");
		return -EIO;
	}
	randombytes_buf(key, sizeof(key));
	if (write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) || fsync(fd) < 0)
		rc = -errno;
	close(fd);
	sodium_memzero(key, sizeof(key));
	if (rc < 0) {
		unlink(path);
		snprintf(err, errsz, "cannot write privacy key %s: %s", path,
			 strerror(-rc));
	}
	return rc;
#else
	snprintf(err, errsz, "privacy needs libsodium; rebuild greyhold with it");
	return -ENOTSUP;
#endif
}

int
privacy_load_key(struct privacy *out, const char *path, bool create,
		 char *err, size_t errsz)
{
	int rc;

	err[0] = '\0';
	if (!privacy_available()) {
		snprintf(err, errsz, "privacy needs libsodium; rebuild greyhold "
			 "with it");
		return -ENOTSUP;
	}
	if (create && (rc = create_key(path, err, errsz)) < 0)
		return rc;
	rc = read_key(out, path, err, errsz);
	if (rc == -ENOENT || (rc < 0 && err[0] == '\0'))
		snprintf(err, errsz, "cannot read privacy key %s: %s", path,
			 strerror(-rc));
	return rc;
}

void
privacy_hash(const struct privacy *p, enum privacy_part part,
	     const char *text, size_t len, uint8_t *out)
{
#ifdef HAVE_SODIUM
	crypto_generichash_state st;
	uint8_t tag = (uint8_t)part;

	crypto_generichash_init(&st, p->key, sizeof(p->key), PRIVACY_HASH_BYTES);
	crypto_generichash_update(&st, &tag, 1);
	crypto_generichash_update(&st, (const uint8_t *)text, len);
	crypto_generichash_final(&st, out, PRIVACY_HASH_BYTES);
#else
	/* Unreachable: privacy_load_key() refuses without libsodium. */
	memset(out, 0, PRIVACY_HASH_BYTES);
#endif
}

void
privacy_key_path(const struct config *cfg, char *out, size_t outsz)
{
	if (cfg->privacy_key_file[0] != '\0')
		snprintf(out, outsz, "%s", cfg->privacy_key_file);
	else
		snprintf(out, outsz, "%s/privacy.key", cfg->dbdir);
}

void
privacy_apply(const struct privacy *p, struct triplet_key *k)
{
	uint8_t out[PRIVACY_KEY_LEN];
	const char *sender = memchr(k->key, '\0', k->key_len);
	const char *rcpt;
	size_t sender_len;

	/* triplet_build() always writes CLIENT\0SENDER\0RECIPIENT. */
	sender++;
	rcpt = memchr(sender, '\0', k->key_len - (size_t)(sender - k->key));
	sender_len = (size_t)(rcpt - sender);
	rcpt++;

	out[0] = 'h';
	privacy_hash(p, PRIVACY_CLIENT, k->client, k->client_len, out + 1);
	privacy_hash(p, PRIVACY_SENDER, sender, sender_len,
		     out + 1 + PRIVACY_HASH_BYTES);
	privacy_hash(p, PRIVACY_RECIPIENT, rcpt,
		     k->key_len - (size_t)(rcpt - k->key),
		     out + 1 + 2 * PRIVACY_HASH_BYTES);
	memcpy(k->key, out, sizeof(out));
	k->key_len = sizeof(out);
	memcpy(k->client, out, PRIVACY_CLIENT_LEN);
	k->client[PRIVACY_CLIENT_LEN] = '\0';
	k->client_len = PRIVACY_CLIENT_LEN;
}
