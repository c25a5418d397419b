/*
 * test_suffix_memo - the memo's registrable domain is libpsl's, name for
 * name: over names built from every rule of the distribution's Public
 * Suffix List (plain, wildcard and exception rules, with labels added on
 * the left), asked twice so that the second round answers from the memo
 * (with 4096 slots for tens of thousands of suffixes, slots are reused
 * and collisions happen), and over a few names checked by hand.
 */
#include "suffix_memo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define PSL_TEXT "/usr/share/publicsuffix/public_suffix_list.dat"

static const psl_ctx_t *
the_list(void)
{
	static psl_ctx_t *latest;

	if (latest == NULL)
		latest = psl_latest(NULL);
	return latest != NULL ? latest : psl_builtin();
}

static void
check(suffix_memo_t *m, const char *name)
{
	const char *want = psl_registrable_domain(the_list(), name);
	const char *got = suffix_memo_registrable(m, name);

	if (want == NULL && got == NULL)
		return;
	if (want == NULL || got == NULL || want != got)
		fail_msg("'%s': memo says '%s', libpsl '%s'", name,
			 got != NULL ? got : "(none)",
			 want != NULL ? want : "(none)");
}

static void
test_names_by_hand(void **state)
{
	suffix_memo_t *m;

	(void)state;
	assert_int_equal(suffix_memo_new(&m, the_list()), 0);
	for (int round = 0; round < 2; round++) {
		const char *got;

		got = suffix_memo_registrable(m, "mta7-abcd.out.relay.example.co.uk");
		assert_non_null(got);
		assert_string_equal(got, "example.co.uk");
		got = suffix_memo_registrable(m, "mail.example.org");
		assert_string_equal(got, "example.org");
		assert_null(suffix_memo_registrable(m, "co.uk"));
		assert_null(suffix_memo_registrable(m, "org"));
		assert_null(suffix_memo_registrable(m, ".example.org"));
		/* Private section: customers of a platform are told apart. */
		got = suffix_memo_registrable(m, "a.b.alice.github.io");
		assert_string_equal(got, "alice.github.io");
	}
	suffix_memo_free(m);
}

/* Each rule of the text list, and names one, two and three labels below. */
static void
test_every_rule_agrees_with_libpsl(void **state)
{
	static const char *const below[] = {"", "x.", "mail.x.", "a.b.mail."};
	suffix_memo_t *m;
	char line[512], name[700];
	FILE *fp = fopen(PSL_TEXT, "r");
	size_t rules = 0;

	(void)state;
	if (fp == NULL)
		skip();
	assert_int_equal(suffix_memo_new(&m, the_list()), 0);
	for (int round = 0; round < 2; round++) {
		rewind(fp);
		while (fgets(line, sizeof(line), fp) != NULL) {
			char *rule = line;

			line[strcspn(line, " \t\r\n")] = '\0';
			if (rule[0] == '\0' || (rule[0] == '/' && rule[1] == '/'))
				continue;
			if (rule[0] == '!')
				rule++;
			else if (rule[0] == '*' && rule[1] == '.')
				rule += 2;
			for (size_t i = 0; i < sizeof(below) / sizeof(below[0]); i++) {
				snprintf(name, sizeof(name), "%s%s", below[i], rule);
				check(m, name);
				/* The exception's own name, and "www" under it. */
				snprintf(name, sizeof(name), "%swww.%s", below[i], rule);
				check(m, name);
			}
			rules += round == 0;
		}
	}
	fclose(fp);
	suffix_memo_free(m);
	/* The list has thousands of rules: it was really read. */
	assert_true(rules > 5000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_by_hand),
		cmocka_unit_test(test_every_rule_agrees_with_libpsl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
