-- Topic strategies: `weighted` (by t_topics.weight) joins rotate, random (now uniform) and sticky (ADR 0031).
alter table t_conversations drop constraint t_conversations_topic_strategy_check;
alter table t_conversations add constraint t_conversations_topic_strategy_check
  check (topic_strategy in ('rotate', 'random', 'weighted', 'sticky'));
