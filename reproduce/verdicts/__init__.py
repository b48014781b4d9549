"""The claims decided from the records: each claim's outcome, the registered family decided together by
Holm, the statistics, the words, the rule versions from git, the pilot and the registration's sizing."""
