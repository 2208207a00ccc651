"""Protocol rules shared by every role and by orchestration: the task (`task`), peer validation
(`validation`) and what a round's inputs are on chain and storage (`rounds`)."""
