/*
 * job - the identities of a job, one way for every backend to read them.
 */
#include "job.h"

#include "decide.h"

_Static_assert(1 + JOB_MAX_MORE == DECIDE_MAX_IDS,
	       "a job carries exactly the identities decide_request() takes");

void
job_queue_push(struct job_queue *q, struct store_job *job)
{
	job->next = NULL;
	if (q->tail != NULL)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
}

size_t
job_ids(const struct store_job *job)
{
	return 1 + (job->n_more <= JOB_MAX_MORE ? job->n_more : JOB_MAX_MORE);
}

const struct triplet_key *
job_id_key(const struct store_job *job, size_t i)
{
	return i == 0 ? &job->key : &job->more[i - 1].key;
}

bool
job_id_awl(const struct store_job *job, size_t i, const struct engine_params *p)
{
	if (p->awl_passes == 0)
		return false;
	/* A client without a usable address shares one key: never listed. */
	return i == 0 ? job->key.client_is_net : job->more[i - 1].awl;
}

struct engine_params
job_params(const struct store_job *job, const struct engine_params *p)
{
	struct engine_params out = *p;

	if (job->delay > 0)
		out.delay = job->delay;
	return out;
}
