-- Answers to consent prompts: a "no" quiets the prompts for its purpose for 30 days.
CREATE TABLE prompt_answers (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt  TEXT    NOT NULL,
    purpose TEXT    NOT NULL CHECK (purpose IN ('personalise', 'request', 'measure', 'improve')),
    answer  TEXT    NOT NULL CHECK (answer IN ('yes', 'no')),
    at      INTEGER NOT NULL
);
