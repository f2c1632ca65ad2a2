/**
 * Text with the NUL character (U+0000) is refused before it reaches the database, on both
 * dialects. PostgreSQL cannot store it in `text` at all (it would fail the statement as a
 * server error); SQLite can, but a database holding one could never be moved to PostgreSQL.
 * So both refuse it alike, as a bad request, and nothing is written.
 */
import {
  OperationNodeTransformer,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type PrimitiveValueListNode,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
  type ValueNode,
} from 'kysely';
import { ThresholdError } from '../core/errors.ts';

/** Walks a query's values; throws at the first string holding U+0000. */
class NulFinder extends OperationNodeTransformer {
  protected override transformValue(node: ValueNode): ValueNode {
    refuseNul(node.value);
    return super.transformValue(node);
  }

  protected override transformPrimitiveValueList(
    node: PrimitiveValueListNode,
  ): PrimitiveValueListNode {
    for (const value of node.values) refuseNul(value);
    return super.transformPrimitiveValueList(node);
  }
}

function refuseNul(value: unknown): void {
  if (typeof value === 'string' && value.includes('\u0000')) {
    throw new ThresholdError('request.invalid', 'Text may not contain the NUL character (U+0000).');
  }
}

/**
 * The Kysely plugin every store connection runs with: a query with a string value holding
 * U+0000 (in a write or in a condition) throws {@link ThresholdError} `request.invalid` (400)
 * instead of running. Values inside JSON text are escaped (`\u0000`) and pass.
 */
export class NulTextGuard implements KyselyPlugin {
  private readonly finder = new NulFinder();

  /** Checks the query's values; returns the query unchanged. */
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.finder.transformNode(args.node);
    return args.node;
  }

  /** Results pass unchanged. */
  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return Promise.resolve(args.result);
  }
}
