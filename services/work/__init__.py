"""Work intake: queues, task kinds, tasks, their lifecycle, history, comments, attachments and bulk import."""
