"""Use cases. Each public function is one transaction: it commits entirely or writes nothing."""
