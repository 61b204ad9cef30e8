"""The RQ job queues as admins see them: depth, running and failed jobs, retry."""
